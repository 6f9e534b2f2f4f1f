"""`miniscan demo`: the status figures as pure functions, the one-line refusals in-process,
and one real run against the real emulator that must store rows and leave nothing running.

The real run tags its environment with a unique variable; every process the demo starts
(emulator launcher and java, supervisor, decoders, writer, scanner) inherits it, so /proc
tells which processes belong to the run without trusting the demo's own account of them.
"""

from __future__ import annotations

import io
import math
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from supervisor_harness import pid_alive

from contracts import defaults
from contracts.exit_codes import EXIT_STARTUP
from demo import run as demo_run
from demo.cli import demo
from demo.display import StatusDisplay
from demo.run import POISON_PAYLOADS, DemoSettings, summary
from demo.status import (
    Snapshot,
    StatusWindow,
    bucket_increase,
    fit_width,
    format_status,
    parse_snapshot,
    status_figures,
)
from testkit import emulator as emulator_module
from testkit import processes as testkit_processes
from testkit.emulator import INSTALL_HINT, EmulatorError, free_port
from testkit.processes import StopRequests, kill_group, spawn_child, stop_child
from testkit.scrape import estimate_quantile

INF = math.inf


# --- estimate_quantile -------------------------------------------------------------------


def test_quantile_of_an_empty_histogram_is_unknown():
    assert estimate_quantile(0.5, []) is None
    assert estimate_quantile(0.5, [(0.1, 0.0), (INF, 0.0)]) is None


def test_quantile_interpolates_inside_the_bucket_holding_the_rank():
    buckets = [(0.1, 10.0), (0.5, 30.0), (1.0, 40.0), (INF, 40.0)]
    # rank 20 of 40 is halfway through the (0.1, 0.5] bucket, which holds ranks 10..30.
    assert estimate_quantile(0.5, buckets) == pytest.approx(0.3)
    # rank 5 is halfway through the first bucket, which starts at 0.
    assert estimate_quantile(0.125, buckets) == pytest.approx(0.05)
    assert estimate_quantile(1.0, buckets) == pytest.approx(1.0)


def test_quantile_in_the_inf_bucket_is_the_highest_finite_bound():
    buckets = [(0.1, 1.0), (2.5, 2.0), (INF, 10.0)]
    assert estimate_quantile(0.99, buckets) == 2.5


def test_quantile_skips_leading_empty_buckets():
    buckets = [(0.01, 0.0), (0.05, 0.0), (0.1, 4.0), (INF, 4.0)]
    assert estimate_quantile(0.0, buckets) == pytest.approx(0.05)


@pytest.mark.parametrize("q", [-0.1, 1.5])
def test_quantile_outside_zero_to_one_is_refused(q):
    with pytest.raises(ValueError, match="between 0 and 1"):
        estimate_quantile(q, [(1.0, 1.0), (INF, 1.0)])


@given(
    counts=st.lists(st.integers(0, 1000), min_size=1, max_size=12),
    q_low=st.floats(0, 1),
    q_high=st.floats(0, 1),
)
def test_quantile_is_within_the_bounds_and_grows_with_q(counts, q_low, q_high):
    bounds = [0.01 * 2**i for i in range(len(counts))]
    cumulative = [float(sum(counts[: i + 1])) for i in range(len(counts))]
    buckets = [*zip(bounds, cumulative, strict=True), (INF, cumulative[-1])]
    q_low, q_high = sorted((q_low, q_high))
    low, high = estimate_quantile(q_low, buckets), estimate_quantile(q_high, buckets)
    if cumulative[-1] == 0:
        assert low is None and high is None
        return
    assert 0 <= low <= high <= bounds[-1]


# --- Status line -------------------------------------------------------------------------

EXPOSITION = """\
# TYPE miniscan_messages_stored_total counter
miniscan_messages_stored_total 1500.0
# TYPE miniscan_messages_dead_lettered_total counter
miniscan_messages_dead_lettered_total{reason="invalid_json"} 2.0
miniscan_messages_dead_lettered_total{reason="missing_field"} 1.0
# TYPE miniscan_scans_rows gauge
miniscan_scans_rows 1234.0
# TYPE miniscan_end_to_end_latency_seconds histogram
miniscan_end_to_end_latency_seconds_bucket{le="0.1"} 10.0
miniscan_end_to_end_latency_seconds_bucket{le="0.5"} 30.0
miniscan_end_to_end_latency_seconds_bucket{le="+Inf"} 40.0
miniscan_end_to_end_latency_seconds_count 40.0
miniscan_end_to_end_latency_seconds_sum 9.0
"""


def test_parse_snapshot_sums_labels_and_reads_the_latency_buckets():
    snapshot = parse_snapshot(EXPOSITION, at=7.0)
    assert snapshot == Snapshot(
        at=7.0,
        stored=1500.0,
        rows=1234.0,
        dead_letters=3.0,
        latency_buckets=((0.1, 10.0), (0.5, 30.0), (INF, 40.0)),
    )


def test_parse_snapshot_of_a_fresh_supervisor_is_all_zero():
    snapshot = parse_snapshot("", at=0.0)
    assert (snapshot.stored, snapshot.rows, snapshot.dead_letters) == (0, 0, 0)
    assert snapshot.latency_buckets == ()


def test_status_shows_the_rate_and_latency_of_the_window_not_since_start():
    earlier = Snapshot(0.0, 1000.0, 900.0, 3.0, ((0.1, 0.0), (1.0, 1000.0), (INF, 1000.0)))
    current = Snapshot(4.0, 1800.0, 1500.0, 3.0, ((0.1, 800.0), (1.0, 1800.0), (INF, 1800.0)))
    line = format_status(current, earlier)
    # 800 stored in 4 s; all 800 new observations were under 100 ms, the old ones were not.
    assert line.startswith("stored 200 msg/s | rows 1500 | dead letters 3 | latency p50 50ms")
    assert "p99 99ms" in line


def test_status_without_an_earlier_scrape_has_no_rate_and_no_latency():
    line = format_status(Snapshot(1.0, 0.0, 0.0, 0.0, ()), None)
    assert line == "stored - msg/s | rows 0 | dead letters 0 | latency p50 - p99 -"


def test_bucket_increase_never_goes_negative():
    assert bucket_increase([(0.1, 5.0), (INF, 5.0)], [(0.1, 7.0), (INF, 9.0)]) == [
        (0.1, 0.0),
        (INF, 0.0),
    ]


def test_status_window_forgets_scrapes_older_than_its_span():
    window = StatusWindow(span_s=5.0)
    for second, stored in [(0, 0), (1, 10_000), (4, 10_300), (7, 10_600)]:
        line = window.add(Snapshot(float(second), float(stored), 0.0, 0.0, ()))
    # At t=7 the scrapes at 0 and 1 are older than 5 s: the rate is (10600-10300)/(7-4).
    assert line.startswith("stored 100 msg/s")


# --- The status line on a terminal, elsewhere, and on a narrow terminal (issue 15) --------


class FakeTerminal(io.StringIO):
    """What the display writes to when stdout is a terminal."""

    def isatty(self) -> bool:
        return True


EARLIER = Snapshot(0.0, 1000.0, 900.0, 3.0, ((0.1, 0.0), (1.0, 1000.0), (INF, 1000.0)))
CURRENT = Snapshot(4.0, 1800.0, 1500.0, 3.0, ((0.1, 800.0), (1.0, 1800.0), (INF, 1800.0)))


def redraws(out: io.StringIO) -> list[str]:
    """Each line drawn over the previous one (every draw starts with a carriage return)."""
    text = out.getvalue()
    assert text.startswith("\r"), text
    return text.split("\r")[1:]


def test_on_a_terminal_the_line_is_redrawn_in_place(monkeypatch):
    monkeypatch.setenv("COLUMNS", "120")
    out = FakeTerminal()
    display = StatusDisplay(out, quiet=False)
    display.show("stored 100 msg/s | rows 12345", now=0.0)
    display.show("stored 90 msg/s | rows 12", now=0.4)  # no 5 s wait on a terminal
    display.show("stored 95 msg/s | rows 13", now=0.8)
    assert "\n" not in out.getvalue()
    first, second, third = redraws(out)
    # A shorter line is padded over what is left of the longer one before it.
    assert second == "stored 90 msg/s | rows 12".ljust(len(first))
    assert third == "stored 95 msg/s | rows 13"
    display.end()  # the last figures stay on screen; what follows starts on a new line
    assert out.getvalue().endswith("stored 95 msg/s | rows 13\n")


def test_elsewhere_a_plain_line_is_printed_every_five_seconds():
    out = io.StringIO()  # a pipe or a log file: isatty() is False
    display = StatusDisplay(out, quiet=False)
    assert display.width() is None
    for second in range(12):
        display.show(f"line at {second}", now=100.0 + second)
    display.end()
    assert out.getvalue().splitlines() == ["line at 0", "line at 5", "line at 10"]
    assert "\r" not in out.getvalue()


def test_quiet_prints_nothing_in_either_mode():
    for out in (FakeTerminal(), io.StringIO()):
        display = StatusDisplay(out, quiet=True)
        display.show("stored 1 msg/s", now=0.0)
        display.end()
        assert out.getvalue() == ""


@pytest.mark.parametrize("columns", [80, 40, 30, 12, 3, 1])
def test_on_a_narrow_terminal_the_line_never_wraps(monkeypatch, columns):
    monkeypatch.setenv("COLUMNS", str(columns))  # what shutil.get_terminal_size reads first
    out = FakeTerminal()
    display = StatusDisplay(out, quiet=False)
    window = StatusWindow()
    for snapshot in (EARLIER, CURRENT):
        display.show(window.add(snapshot, display.width()), snapshot.at)
    display.show("x" * 200, now=5.0)  # even a line nobody compacted
    for drawn in redraws(out):
        # The last column stays free: some terminals wrap as soon as it is written.
        assert len(drawn) < columns or len(drawn) <= 1, drawn


def test_a_40_column_terminal_gets_every_figure_in_the_short_form(monkeypatch):
    monkeypatch.setenv("COLUMNS", "40")
    out = FakeTerminal()
    display = StatusDisplay(out, quiet=False)
    display.show(format_status(CURRENT, EARLIER, display.width()), now=0.0)
    (drawn,) = redraws(out)
    assert drawn == "200/s rows 1500 dl 3 p50 50ms p99 99ms"


def test_fit_width_keeps_the_long_form_when_it_fits_and_never_exceeds_the_width():
    figures = status_figures(CURRENT, EARLIER)
    long = "stored 200 msg/s | rows 1500 | dead letters 3 | latency p50 50ms p99 99ms"
    assert fit_width(figures, None) == fit_width(figures, len(long)) == long
    assert fit_width(figures, len(long) - 1) == figures.short()
    assert fit_width(figures, 20) == "200/s rows 1500 d..."
    for width in range(len(long) + 2):
        assert len(fit_width(figures, width)) <= width


@given(
    rows=st.floats(0, 1e12),
    dead=st.floats(0, 1e9),
    stored=st.floats(0, 1e9),
    width=st.integers(0, 200),
)
def test_the_status_line_fits_any_width_for_any_figures(rows, dead, stored, width):
    current = Snapshot(2.0, stored, rows, dead, ((1.0, 5.0), (INF, 9.0)))
    line = format_status(current, Snapshot(1.0, 0.0, 0.0, 0.0, ()), width)
    assert len(line) <= width


def demo_settings(db_path: str) -> DemoSettings:
    return DemoSettings(
        rate=100, workers=1, db_path=db_path, metrics_port=9100, duration_s=0, quiet=False
    )


def test_the_stop_summary_names_the_commands_and_where_the_metrics_were(tmp_path):
    from store.backend import open_store

    db_path = tmp_path / "my scans" / "demo.db"  # a space: the commands must still paste
    with open_store(db_path):
        pass  # an empty, current database
    url = "http://127.0.0.1:9123/metrics"
    line = summary(demo_settings(str(db_path)), 8.2, url)
    assert "\n" not in line
    assert line.startswith(f"stopped after 8s: 0 rows and 0 dead letters in {db_path};")
    quoted = f"'{db_path}'"
    for command in ("miniscan stats", "miniscan query", "miniscan dead-letters list"):
        assert f"`{command} --db {quoted}`" in line
    assert line.endswith(f"metrics were at {url} while it ran")


def test_the_stop_summary_still_says_where_the_metrics_were_without_a_database(tmp_path):
    db_path = tmp_path / "never-written.db"
    url = "http://127.0.0.1:9123/metrics"
    line = summary(demo_settings(str(db_path)), 3.0, url)
    assert line.startswith(f"stopped after 3s; cannot read {db_path}")
    assert line.endswith(f"metrics were at {url} while it ran")


# --- Refusals, in-process ----------------------------------------------------------------


def test_missing_emulator_gives_the_install_hint_in_one_line(monkeypatch, tmp_path):
    def no_emulator(*args: object) -> list[str]:
        raise EmulatorError(INSTALL_HINT)

    monkeypatch.setattr(emulator_module, "find_emulator_command", no_emulator)
    monkeypatch.setattr(demo_run.tempfile, "tempdir", str(tmp_path))
    result = CliRunner().invoke(
        demo, ["--db", str(tmp_path / "scans.db"), "--metrics-port", str(free_port())]
    )
    assert result.exit_code == EXIT_STARTUP, result.output
    assert result.output == f"Error: {INSTALL_HINT}\n"
    assert list(tmp_path.iterdir()) == [], "nothing may be left behind"


def test_busy_metrics_port_is_refused_before_anything_starts(monkeypatch, tmp_path):
    def must_not_start(*args: object, **kwargs: object) -> None:
        raise AssertionError("the emulator was started despite the busy port")

    monkeypatch.setattr(emulator_module, "start_emulator", must_not_start)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(demo, ["--metrics-port", str(port)])
    assert result.exit_code == EXIT_STARTUP, result.output
    assert result.output.count("\n") == 1
    assert f"metrics port {port} is busy" in result.output


# --- Stopping children --------------------------------------------------------------------


def wait_for_line(path: Path, text: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in path.read_text():
        assert time.monotonic() < deadline, f"{text!r} never appeared in {path}"
        time.sleep(0.05)


def test_a_child_that_ignores_its_stop_signal_is_killed_after_the_timeout(tmp_path):
    stubborn = (
        "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN);"
        " print('ready', flush=True); time.sleep(60)"
    )
    args = [sys.executable, "-c", stubborn]
    child = spawn_child("scanner", args, dict(os.environ), tmp_path / "scanner.log")
    try:
        wait_for_line(child.log_path, "ready")
        started = time.monotonic()
        code = stop_child(child, signal.SIGINT, 0.5, StopRequests())
        assert time.monotonic() - started < 5
        assert child.killed and code == -signal.SIGKILL
        assert not pid_alive(child.process.pid)
    finally:
        kill_group(child.process.pid)
        child.process.wait()


def test_what_outlives_a_child_in_its_group_is_killed_after_a_grace(tmp_path, monkeypatch):
    monkeypatch.setattr(testkit_processes, "GROUP_GRACE_S", 0.5)
    leaves_orphan = f"sleep 60 & echo $! > {tmp_path}/orphan.pid; echo ready; wait"
    args = ["sh", "-c", leaves_orphan]
    child = spawn_child("supervisor", args, dict(os.environ), tmp_path / "supervisor.log")
    try:
        wait_for_line(child.log_path, "ready")
        orphan = int((tmp_path / "orphan.pid").read_text())
        # SIGTERM stops the shell at once; its `sleep` stays behind in the group.
        code = stop_child(child, signal.SIGTERM, 5.0, StopRequests())
        assert code == -signal.SIGTERM
        assert child.killed, "the leftover was not reported"
        deadline = time.monotonic() + 5
        while pid_alive(orphan):
            assert time.monotonic() < deadline, "the orphan in the group survived"
            time.sleep(0.05)
    finally:
        kill_group(child.process.pid)
        child.process.wait()


def test_a_missing_console_script_falls_back_to_the_interpreter():
    assert testkit_processes.command_for("miniscan-no-such-script", "scanner.cli") == [
        sys.executable, "-c", "from scanner.cli import main; main()"
    ]  # fmt: skip


# --- The real thing ----------------------------------------------------------------------


def emulator_installed() -> bool:
    try:
        emulator_module.find_emulator_command("127.0.0.1", 1, defaults.DEFAULT_PROJECT)
    except EmulatorError:
        return False
    return True


def tagged_processes(tag: str) -> dict[int, str]:
    """Live processes whose environment carries `tag`: {pid: command line}."""
    needle = tag.encode()
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if pid_alive(int(entry.name)):
            found[int(entry.name)] = cmdline
    return found


@pytest.mark.emulator
@pytest.mark.timeout(90)
def test_demo_runs_stores_rows_and_leaves_nothing_running(tmp_path):
    if not emulator_installed():
        if os.environ.get("MINISCAN_REQUIRE_EMULATOR") == "1":
            pytest.fail("emulator required but unavailable")
        pytest.skip(INSTALL_HINT)
    tag = f"MINISCAN_DEMO_TEST_TAG={uuid.uuid4().hex}"
    env = {**os.environ, tag.split("=")[0]: tag.split("=")[1]}
    env.pop("PUBSUB_EMULATOR_HOST", None)
    env["TMPDIR"] = str(tmp_path)  # the demo's log folder, and the emulator's log, land here
    db_path = tmp_path / "demo.db"
    command = [sys.executable, "-c", "from demo.cli import demo; demo()",
               "--duration", "8", "--rate", "200", "--workers", "2",
               "--db", str(db_path), "--metrics-port", str(free_port())]  # fmt: skip
    demo_process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    seen: dict[int, str] = {}
    deadline = time.monotonic() + 60
    try:
        while demo_process.poll() is None and time.monotonic() < deadline:
            seen.update(tagged_processes(tag))
            time.sleep(0.2)
        out, err = demo_process.communicate(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if demo_process.poll() is None:
            demo_process.kill()
            demo_process.wait()
    seen.pop(demo_process.pid, None)
    assert demo_process.returncode == 0, f"stdout: {out}\nstderr: {err}"
    assert "Traceback" not in err

    roles = " ".join(seen.values())
    # Google's emulator runs as `java`, the built-in one as `python -m localpubsub` (issue 16).
    server = "java" if emulator_module.choose_server() == emulator_module.GOOGLE else "localpubsub"
    for role in (server, "miniscan-supervisor", "miniscan-scanner"):
        assert role in roles, f"never saw {role} among {sorted(seen.values())}"
    assert len(seen) >= 6, "emulator, supervisor, 2 decoders, writer, scanner"
    assert tagged_processes(tag) == {}, "processes the demo started are still running"
    assert not [pid for pid in seen if pid_alive(pid)]

    from store.sqlite import reader

    conn = reader.open_reader(db_path)
    try:
        stats = reader.read_stats(conn)
    finally:
        conn.close()
    assert stats.scan_rows > 0
    assert stats.dead_letters == len(POISON_PAYLOADS)
    assert "msg/s | rows" in out, "no status line was printed"
    summary = out.strip().splitlines()[-1]
    assert f"{stats.scan_rows} rows and {len(POISON_PAYLOADS)} dead letters" in summary
    assert f"miniscan query --db {db_path}" in summary
