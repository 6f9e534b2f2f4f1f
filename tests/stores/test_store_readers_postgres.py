"""The readers on both stores (issue 14): the same batches written to a SQLite file and to
PostgreSQL (through `store.backend.open_store`) give the same output from `miniscan query`,
`stats` and `dead-letters list|show|replay`, run through the real `miniscan` group.

Only what must differ is normalised: the store's name (a path or a URL) and its size (a
file, or PostgreSQL's tables). The data is chosen where the two engines part by default:
a NUL and non-ASCII in responses, keys and reasons whose byte order is not the cluster's
collation order (the test cluster's default collation is ICU en-US), and tied counts.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from commands.miniscan import main as miniscan
from contracts.records import DeadLetter, ScanRecord
from store.backend import open_store
from store.postgres.reader import PostgresReader
from store.reader import describe_target, open_store_reader


def scan(ip: str, port: int, service: str, ts: int, response: str, v: int = 1) -> ScanRecord:
    return ScanRecord(ip, port, service, ts, response, v)


def letter(payload: bytes, reason: str, message_id: str, at: float, detail: str = "") -> DeadLetter:
    return DeadLetter(payload, reason, message_id, at, detail)


T = 1_714_560_000
# Within a batch, dead letters come in identity order (message id, then payload digest): the
# order PostgreSQL inserts them in (store.postgres.writer takes its locks in that order), so that
# both stores hand out the same ids. No redelivered dead letter here: PostgreSQL's identity
# spends a number on a row that ON CONFLICT then drops (as on a rolled-back batch), SQLite's
# AUTOINCREMENT does not, so after a redelivery the ids keep their order but may have gaps.
BATCHES: list[tuple[list[ScanRecord], list[DeadLetter]]] = [
    (
        [
            scan("1.1.1.7", 80, "HTTP", T, "HTTP/1.1 200 OK\r\nServer: x", 2),
            scan("1.1.1.7", 22, "SSH", T + 3600, "SSH-2.0-OpenSSH_9.6"),
            # ICU puts "::1" before "2001:db8::1" (punctuation is ignored); bytes do not.
            scan("2001:db8::1", 443, "HTTPS", T - 60_000, 'tls, "quoted"'),
            scan("::1", 8080, "HTTP_PROXY", T - 100, "café ☕ naïve"),
            scan("9.9.9.9", 21, "FTP", T + 10, "220 \x00 NUL inside"),
            scan("9.9.9.9", 25, "SMTP", T + 10, "B tie"),
        ],
        [
            letter(b"", "Zz_custom", "", T + 0.5, "empty payload"),
            letter(b'\x00\xff{"ip": "1.1.1.7"', "invalid_json", "m1", T + 1.5, "bad"),
            letter(b'{"port": 70000}', "bad_port", "m2", T + 2.0),
        ],
    ),
    (
        [
            # Ties on the timestamp: the byte order of the response decides ("a" > "B").
            scan("9.9.9.9", 25, "SMTP", T + 10, "a tie"),
            scan("9.9.9.9", 25, "SMTP", T + 10, "A tie"),
            scan("1.1.1.7", 80, "HTTP", T - 5, "older: loses", 3),
            scan("10.0.0.2", 443, "HTTPS", T + 20, "x" * 200),
        ],
        [letter(b"{", "invalid_json", "m3", T + 3.0)],
    ),
]


def fill(target: str) -> str:
    with open_store(target) as store:
        for records, letters in BATCHES:
            store.write_batch(records, letters)
    return target


@pytest.fixture
def stores(tmp_path, postgres_url) -> dict[str, str]:
    return {
        "sqlite": fill(str(tmp_path / "scan_results.db")),
        "postgres": fill(postgres_url),
    }


def run(target: str, *args: str, env: dict[str, str] | None = None):
    extra = ["--db", target] if env is None else []
    return CliRunner().invoke(miniscan, [*args, *extra], env=env, catch_exceptions=False)


def normalised(text: str, target: str) -> str:
    """The output with what must differ between the stores replaced by placeholders."""
    for name in (target, describe_target(target), str(Path(target).resolve())):
        text = text.replace(name, "<store>")
    text = re.sub(r'"file_bytes":\d+', '"file_bytes":0', text)
    text = re.sub(r'"size_of":"\w+"', '"size_of":"-"', text)
    return re.sub(r"\(\d+(\.\d)? (B|KiB|MiB|GiB)( in tables)?,", "(<size>,", text)


COMMANDS = [
    ["query"],
    ["query", "--format", "table"],
    ["query", "--format", "csv"],
    ["query", "--ip", "::1"],
    ["query", "--ip", "::ffff:9.9.9.9", "--format", "table"],
    ["query", "--service", "https"],
    ["query", "--port", "25"],
    ["query", "--since", "2024-05-01T10:40:00Z"],
    ["query", "--limit", "3", "--format", "table"],
    ["query", "--ip", "8.8.8.8", "--format", "table"],
    ["stats"],
    ["stats", "--format", "table"],
    ["stats", "--full"],
    ["stats", "--full", "--format", "table"],
    ["dead-letters", "list"],
    ["dead-letters", "list", "--format", "table"],
    ["dead-letters", "list", "--format", "csv"],
    ["dead-letters", "list", "--counts"],
    ["dead-letters", "list", "--counts", "--format", "table"],
    ["dead-letters", "list", "--reason", "invalid_json", "--limit", "1"],
    ["dead-letters", "show", "1"],
    ["dead-letters", "show", "2", "--format", "json"],
    ["dead-letters", "show", "99"],
    ["dead-letters", "replay", "--reason", "invalid_json", "--dry-run"],
]


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_every_read_command_prints_the_same_on_both_stores(stores, args) -> None:
    results = {name: run(target, *args) for name, target in stores.items()}
    sqlite, postgres = (
        (r.exit_code, normalised(r.stdout, stores[n]), normalised(r.stderr, stores[n]))
        for n, r in results.items()
    )
    assert postgres == sqlite
    assert sqlite[0] in (0, 1) and (sqlite[1] or sqlite[2])


def test_show_raw_gives_the_same_bytes(stores) -> None:
    raw = {n: run(t, "dead-letters", "show", "2", "--format", "raw") for n, t in stores.items()}
    assert raw["postgres"].stdout_bytes == raw["sqlite"].stdout_bytes == BATCHES[0][1][1].payload


def test_what_the_stores_hold_is_what_the_commands_show(stores) -> None:
    """The comparison above is not two empty outputs: spot-check the PostgreSQL side."""
    query = run(stores["postgres"], "query", "--port", "25", "--format", "json").stdout
    assert '"response":"a tie"' in query
    stats = run(stores["postgres"], "stats", "--format", "table").stdout
    assert "7 rows, ? IPs" in stats and " in tables, schema version 4)" in stats
    full = run(stores["postgres"], "stats", "--full", "--format", "table").stdout
    assert "7 rows, 5 IPs" in full
    counts = run(stores["postgres"], "dead-letters", "list", "--counts").stdout.splitlines()
    # Ties in byte order, as SQLite's BINARY: "Zz_custom" before "bad_port".
    assert counts == [
        '{"reason":"invalid_json","count":2}',
        '{"reason":"Zz_custom","count":1}',
        '{"reason":"bad_port","count":1}',
    ]
    with open_store_reader(stores["postgres"]) as reader:
        nul = next(reader.find_scans(ip="9.9.9.9", port=21))
    assert nul.response == "220 \x00 NUL inside"


def test_the_environment_names_a_postgresql_store(stores) -> None:
    via_env = run("", "query", "--port", "443", env={"MINISCAN_DB": stores["postgres"]})
    assert via_env.exit_code == 0
    assert via_env.stdout == run(stores["sqlite"], "query", "--port", "443").stdout


def test_stats_come_from_one_snapshot(stores, monkeypatch) -> None:
    """A batch committed between stats' first and last statements is not half counted."""
    url = stores["postgres"]
    original = PostgresReader._count_by_reason

    def commit_meanwhile(conn):
        with open_store(url) as writer:  # another connection, as another supervisor's writer
            writer.write_batch(
                [scan("7.7.7.7", 1, "NEW", T, "new")], [letter(b"x", "bad_port", "m9", T)]
            )
        return original(conn)

    monkeypatch.setattr(PostgresReader, "_count_by_reason", staticmethod(commit_meanwhile))
    with open_store_reader(url) as reader:
        stats = reader.read_stats()
    assert (stats.scan_rows, stats.dead_letters) == (7, 4), "saw part of a later commit"
    monkeypatch.undo()
    with open_store_reader(url) as reader:
        assert (reader.read_stats().scan_rows, reader.read_stats().dead_letters) == (8, 5)


def test_readers_refuse_missing_tables_and_never_create_them(postgres_url) -> None:
    result = run(postgres_url, "query")
    assert result.exit_code == 3 and result.stdout == ""
    assert "has no miniscan tables yet" in result.stderr and result.stderr.count("\n") == 1
    assert "has no miniscan tables yet" in run(postgres_url, "stats").stderr
    assert "has no miniscan tables yet" in run(postgres_url, "query").stderr  # still none


def test_a_password_is_never_shown(postgres_cluster) -> None:
    # Nothing listens on port 1: the connection fails, and the message names the store.
    url = f"postgresql://{postgres_cluster.user}:s3cret-pw@127.0.0.1:1/nowhere"
    for command in (["query"], ["stats"], ["dead-letters", "list"], ["dead-letters", "show", "1"],
                    ["dead-letters", "replay", "--all", "--dry-run"]):  # fmt: skip
        result = run(url, *command)
        assert result.exit_code == 3, result.output
        assert "s3cret" not in result.output + result.stderr
        assert result.stderr.startswith("miniscan: cannot connect to postgresql://")
    assert "s3cret" not in describe_target(url)


def test_a_reader_does_not_hold_a_transaction_between_calls(stores) -> None:
    """A reader left open (a person reading its output) must not pin a snapshot, so that
    PostgreSQL's vacuum is never held back by it."""
    with open_store_reader(stores["postgres"]) as reader:
        list(reader.find_scans(limit=2))
        reader.read_stats()
        reader.list_dead_letters()
        status = reader._conn.info.transaction_status  # psycopg: IDLE, not INTRANS
        assert status.name == "IDLE"


@pytest.mark.emulator
def test_replay_republishes_and_deletes_the_same_on_both_stores(stores, pubsub_target) -> None:
    from test_store_replay import pull_exactly

    outputs, remaining = {}, {}
    for name, target in stores.items():
        topic = ("--project", pubsub_target.project, "--topic", pubsub_target.topic)
        result = run(target, "dead-letters", "replay", "--reason", "invalid_json", *topic)
        assert result.exit_code == 0, result.output
        outputs[name] = normalised(result.stdout, target)
        with open_store_reader(target) as reader:
            remaining[name] = [(d.id, d.payload, d.reason) for d in reader.list_dead_letters()]
    assert outputs["postgres"] == outputs["sqlite"]
    assert "replayed 2 of 2 dead letters" in outputs["sqlite"]
    assert "removed 2 from <store>" in outputs["sqlite"]
    assert remaining["postgres"] == remaining["sqlite"] == [
        (1, b"", "Zz_custom"), (3, b'{"port": 70000}', "bad_port"),
    ]  # fmt: skip
    got = sorted(data for data, _ in pull_exactly(pubsub_target, 4))
    assert got == sorted([b'\x00\xff{"ip": "1.1.1.7"', b"{"] * 2)
