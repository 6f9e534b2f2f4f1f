"""contracts.signal_relay: a stop signal sets the Event even when it lands while the main
thread holds the Event's own lock (the moment that hung the scanner's Ctrl-C: its handler
called `event.set()` and waited forever for a lock its own thread held).

Each case runs in a child interpreter with a kill timeout, so a regression fails the test
instead of hanging the run."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import pytest

HANG_LIMIT_S = 30


def run_child(body: str) -> str:
    script = "import os, signal, threading\nfrom contracts.signal_relay import stop_signals_set\n"
    try:
        done = subprocess.run(
            [sys.executable, "-c", script + textwrap.dedent(body)],
            capture_output=True, text=True, timeout=HANG_LIMIT_S,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail(f"the child hung for {HANG_LIMIT_S}s: a signal deadlocked it")
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_landing_while_the_event_lock_is_held_still_sets_it(signum):
    out = run_child(f"""
        stop = threading.Event()
        with stop_signals_set(stop):
            with stop._cond:  # as inside stop.wait(): the main thread holds the Event's lock
                os.kill(os.getpid(), {int(signum)})
                for _ in range(10_000):  # the Python-level handler runs in here
                    pass
                print("set inside" if stop.is_set() else "not yet")
            print("set" if stop.wait(10) else "never set")
    """)
    assert out.split() == ["not", "yet", "set"]


def test_leaving_restores_the_handlers_and_wakeup_fd_and_ends_the_relay():
    out = run_child("""
        before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        stop = threading.Event()
        with stop_signals_set(stop):
            inside = signal.set_wakeup_fd(-1)
            signal.set_wakeup_fd(inside)
        print(inside != -1, signal.set_wakeup_fd(-1) == -1)
        print(all(signal.getsignal(s) is h for s, h in before.items()))
        print([t.name for t in threading.enumerate() if t.name == "stop-signal-relay"])
        try:
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(10_000):
                pass
            print("no KeyboardInterrupt")
        except KeyboardInterrupt:
            print("KeyboardInterrupt as before")
        print(stop.is_set())
    """)
    assert out.splitlines() == [
        "True True", "True", "[]", "KeyboardInterrupt as before", "False"
    ]  # fmt: skip


def test_other_signals_with_python_handlers_do_not_set_it():
    out = run_child("""
        signal.signal(signal.SIGUSR1, lambda *_: print("usr1"))
        stop = threading.Event()
        with stop_signals_set(stop):
            os.kill(os.getpid(), signal.SIGUSR1)
            print(stop.wait(0.5))
    """)
    assert out.split() == ["usr1", "False"]
