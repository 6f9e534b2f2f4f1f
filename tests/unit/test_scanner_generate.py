"""The mock scanner's payloads: wire shape, both data versions, ports, addresses, seeding."""

from __future__ import annotations

import base64
import ipaddress
import itertools
import json
import re
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scanner import generate

WIRE_KEYS = ["ip", "port", "service", "timestamp", "data_version", "data"]
RESPONSE = re.compile(r"service response: \d+")


def response_of(scan: dict) -> str:
    """Decode a scan's response the way miniscan's decoders must."""
    if scan["data_version"] == 1:
        assert list(scan["data"]) == ["response_bytes_utf8"]
        return base64.b64decode(scan["data"]["response_bytes_utf8"], validate=True).decode()
    assert scan["data_version"] == 2
    assert list(scan["data"]) == ["response_str"]
    return scan["data"]["response_str"]


def test_every_payload_has_the_wire_shape_of_the_real_scanner():
    network = ipaddress.ip_network("1.1.1.0/24")
    for payload in generate.scan_payloads(seed=3, count=500):
        scan = json.loads(payload)
        assert list(scan) == WIRE_KEYS
        assert ipaddress.ip_address(scan["ip"]) in network
        assert scan["ip"] not in ("1.1.1.0", "1.1.1.255")  # network and broadcast
        assert scan["service"] in ("HTTP", "SSH", "DNS")
        assert scan["port"] in generate.SERVICE_PORTS[scan["service"]]
        assert type(scan["timestamp"]) is int
        assert RESPONSE.fullmatch(response_of(scan))


def test_versions_services_and_ports_are_all_used_about_evenly():
    scans = list(generate.scan_dicts(seed=11, count=4000))
    versions = Counter(scan["data_version"] for scan in scans)
    assert set(versions) == {1, 2}
    assert 0.45 < versions[1] / len(scans) < 0.55  # "half and half"
    pairs = {(scan["service"], scan["port"]) for scan in scans}
    assert pairs == {(s, p) for s, ports in generate.SERVICE_PORTS.items() for p in ports}
    assert len({scan["ip"] for scan in scans}) == 254


def test_ports_any_draws_uniformly_from_the_whole_range_as_the_original_scanner():
    scans = list(generate.scan_dicts(seed=5, count=20_000, ports="any"))
    ports = [scan["port"] for scan in scans]
    assert min(ports) >= 1 and max(ports) <= 65535
    # Uniform over 1..65535: each sixteenth of the range holds about 1/16 of the draws
    # (1,250 expected; 5 sigma is about 170), and far more distinct ports than the 6 per-service.
    sixteenths = Counter((port - 1) * 16 // 65535 for port in ports)
    assert set(sixteenths) == set(range(16))
    assert all(1050 < n < 1450 for n in sixteenths.values()), sixteenths
    assert len(set(ports)) > 10_000
    assert {scan["service"] for scan in scans} == set(generate.SERVICES)
    # The default stays the realistic one, and the seeded default stream is unchanged by it.
    assert list(generate.scan_payloads(seed=5, count=50)) == list(
        generate.scan_payloads(seed=5, count=50, ports="service")
    )
    with pytest.raises(ValueError, match="ports must be one of"):
        next(generate.scan_dicts(seed=5, count=1, ports="some"))


def test_version_1_is_base64_of_the_utf8_bytes_and_version_2_the_text():
    text = "service response: 7 \N{SNOWMAN}"
    assert generate.encode_response(text, 1) == {
        "response_bytes_utf8": base64.b64encode(text.encode("utf-8")).decode()
    }
    assert generate.encode_response(text, 2) == {"response_str": text}
    with pytest.raises(ValueError, match="data_version 3"):
        generate.encode_response(text, 3)


def test_a_seed_makes_the_whole_stream_byte_identical():
    first = list(generate.scan_payloads(seed=42, count=300))
    again = list(generate.scan_payloads(seed=42, count=300))
    other = list(generate.scan_payloads(seed=43, count=300))
    assert first == again
    assert first != other
    timestamps = [json.loads(p)["timestamp"] for p in first]
    assert timestamps == [generate.SEEDED_START_TIME + i for i in range(300)]


def test_unseeded_timestamps_come_from_the_clock_as_each_scan_is_taken():
    ticks = iter([1000.9, 2000.1, 3000.5])
    scans = generate.scan_dicts(seed=None, count=3, clock=lambda: next(ticks))
    assert [scan["timestamp"] for scan in scans] == [1000, 2000, 3000]


def test_start_time_overrides_both_the_clock_and_the_seeded_start():
    scans = generate.scan_dicts(seed=5, count=3, start_time=1_234, clock=lambda: 0.0)
    assert [scan["timestamp"] for scan in scans] == [1234, 1235, 1236]


def test_count_zero_means_forever_and_negative_is_refused():
    assert len(list(itertools.islice(generate.scan_payloads(1, 0), 5000))) == 5000
    with pytest.raises(ValueError, match="count"):
        list(generate.scan_payloads(1, -1))


@pytest.mark.parametrize(
    ("cidr", "expected_hosts"),
    [
        ("10.0.0.7/32", {"10.0.0.7"}),
        ("10.0.0.6/31", {"10.0.0.6", "10.0.0.7"}),
        ("10.0.0.5/30", {"10.0.0.5", "10.0.0.6"}),  # host bits allowed; 4 and 7 are not hosts
        ("2001:db8::/126", {"2001:db8::1", "2001:db8::2", "2001:db8::3"}),
    ],
)
def test_addresses_are_drawn_from_the_usable_hosts_of_the_cidr(cidr, expected_hosts):
    scans = generate.scan_dicts(seed=1, count=200, ips=cidr)
    assert {scan["ip"] for scan in scans} == expected_hosts


@pytest.mark.parametrize("bad", ["", "1.1.1", "1.1.1.0/33", "300.1.1.0/24", "banana"])
def test_a_bad_cidr_is_a_one_line_value_error(bad):
    with pytest.raises(ValueError) as caught:
        generate.parse_cidr(bad)
    message = str(caught.value)
    assert "not a CIDR" in message
    assert "\n" not in message


@given(seed=st.integers(), prefix=st.integers(min_value=8, max_value=32))
def test_any_seed_and_cidr_give_well_formed_scans_inside_the_cidr(seed, prefix):
    network = ipaddress.ip_network(f"100.64.0.0/{prefix}", strict=False)
    for payload in generate.scan_payloads(seed, 20, network):
        scan = json.loads(payload)
        assert list(scan) == WIRE_KEYS
        assert ipaddress.ip_address(scan["ip"]) in network
        assert RESPONSE.fullmatch(response_of(scan))
