"""`miniscan stats` and `query` do not load the Pub/Sub client: it cost them 0.6 s of a
start-up that `stats` must keep under a second (issue 26). Every subcommand still loads,
shows its help and carries the shared options."""

from __future__ import annotations

import subprocess
import sys

import click

from commands.miniscan import SUBCOMMANDS, main

PROBE = """
import sys
from click.testing import CliRunner
from commands.miniscan import main
result = CliRunner().invoke(main, [{args}])
assert result.exit_code == {code}, result.output
print(sorted(m for m in sys.modules if m.startswith(("google", "grpc"))))
"""


def _loaded_google(args: str, code: int) -> str:
    done = subprocess.run([sys.executable, "-c", PROBE.format(args=args, code=code)],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_read_side_commands_do_not_import_the_pubsub_client(tmp_path) -> None:
    db = str(tmp_path / "missing.db")
    # Exit 3: the file is missing; what matters is what running the command imported.
    assert _loaded_google(f"'stats', '--db', {db!r}", 3) == "[]"
    assert _loaded_google(f"'query', '--db', {db!r}, '--ip', '1.2.3.4'", 3) == "[]"
    assert "google.cloud.pubsub_v1" in _loaded_google("'setup', '--help'", 0)  # the probe sees


def test_every_subcommand_loads_with_the_shared_options() -> None:
    context = click.Context(main)
    assert main.list_commands(context) == sorted(SUBCOMMANDS)
    for name in SUBCOMMANDS:
        command = main.get_command(context, name)
        assert command is not None and command.name == name
        leaves = command.commands.values() if isinstance(command, click.Group) else [command]
        for leaf in leaves:
            assert any(p.name == "config" for p in leaf.params), (name, leaf.name)
            assert "Exit codes" in (leaf.epilog or ""), (name, leaf.name)
