"""The `miniscan` command: admin and read-side subcommands, wired from each package.

Owns: only the click group and which subcommands it shows. Each package declares its own
commands next to the code they drive (`store.cli`, `demo.cli`, `localpubsub.cli`); `setup`
is a production admin command of its own (`commands.setup`).

Never: hold logic of its own; a subcommand here is a one-line import.
"""

from __future__ import annotations

import click

from commands.setup import setup_command
from demo.cli import demo
from localpubsub.cli import emulator
from store.cli import ADMIN_COMMANDS as STORE_COMMANDS


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="miniscan")
def main() -> None:
    """miniscan: query the scan database, manage dead letters, set up Pub/Sub, run a demo or
    a local Pub/Sub server."""


for command in (setup_command, *STORE_COMMANDS, demo, emulator):
    main.add_command(command)
