"""The `miniscan` command: admin and read-side subcommands, wired from each package.

Owns: only the click group and which subcommands it shows. Each package declares its own
commands next to the code they drive (`scanner.cli`, `demo.cli`, `localpubsub.cli`); the
store's read-side commands live here in `commands/` (`commands.query`,
`commands.dead_letters`).

Never: hold logic of its own; a subcommand here is a one-line import.
"""

from __future__ import annotations

import click

from commands.dead_letters import dead_letters_group
from commands.query import query_command, stats_command
from demo.cli import demo
from localpubsub.cli import emulator
from scanner.cli import ADMIN_COMMANDS as SCANNER_COMMANDS


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="miniscan")
def main() -> None:
    """miniscan: query the scan database, manage dead letters, set up Pub/Sub, run a demo or
    a local Pub/Sub server."""


STORE_COMMANDS = (query_command, stats_command, dead_letters_group)
for command in (*SCANNER_COMMANDS, *STORE_COMMANDS, demo, emulator):
    main.add_command(command)
