"""The `miniscan` command: admin and read-side subcommands.

Owns: only the click group and which subcommands it shows. The demo and the built-in Pub/Sub
server declare their commands next to the code they drive (`demo.cli`, `localpubsub.cli`);
the store's read-side commands (`commands.query`, `commands.dead_letters`) and `setup`
(`commands.setup`) live here in `commands/`.

Every subcommand gets `--config` and the exit-code table in its --help here
(`contracts.console.share_basics`), so that no command can miss them.

Never: hold logic of its own; a subcommand here is a one-line import.
"""

from __future__ import annotations

import click

from commands.dead_letters import dead_letters_group
from commands.query import query_command, stats_command
from commands.setup import setup_command
from contracts.console import share_basics
from demo.cli import demo
from localpubsub.cli import emulator


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="miniscan")
def main() -> None:
    """miniscan: query the scan database, manage dead letters, set up Pub/Sub, run a demo or
    a local Pub/Sub server."""


for command in (setup_command, query_command, stats_command, dead_letters_group, demo, emulator):
    main.add_command(command)
share_basics(main)
