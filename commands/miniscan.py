"""The `miniscan` command: admin and read-side subcommands.

Owns: only the click group and which subcommands it shows. The demo and the built-in Pub/Sub
server declare their commands next to the code they drive (`demo.cli`, `localpubsub.cli`);
the store's read-side commands (`commands.query`, `commands.dead_letters`), `partition`
(`commands.partition`) and `setup` (`commands.setup`) live here in `commands/`.

A subcommand's module is imported only when that subcommand runs (or --help lists them):
`miniscan stats` answers in milliseconds from the kept counts (issue 26), and importing the
Pub/Sub client that `setup` needs would cost it 0.4 s more than the whole answer.

Every subcommand gets `--config` and the exit-code table in its --help here
(`contracts.console.share_basics`), so that no command can miss them.

Never: hold logic of its own; a subcommand here is one "module:attribute" line.
"""

from __future__ import annotations

import importlib

import click

from contracts.console import share_basics

SUBCOMMANDS = {
    "dead-letters": "commands.dead_letters:dead_letters_group",
    "demo": "demo.cli:demo",
    "emulator": "localpubsub.cli:emulator",
    "partition": "commands.partition:partition_command",
    "query": "commands.query:query_command",
    "setup": "commands.setup:setup_command",
    "stats": "commands.query:stats_command",
}


class LazyGroup(click.Group):
    """A group whose subcommands load on first use (click's documented lazy-loading pattern)."""

    def __init__(self, *args: object, lazy: dict[str, str], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self._lazy and cmd_name not in self.commands:
            module, attribute = self._lazy[cmd_name].split(":")
            command = getattr(importlib.import_module(module), attribute)
            share_basics(command)
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(
    cls=LazyGroup, lazy=SUBCOMMANDS, context_settings={"help_option_names": ["-h", "--help"]}
)
@click.version_option(package_name="miniscan")
def main() -> None:
    """miniscan: query the scan database, manage dead letters, set up Pub/Sub, run a demo or
    a local Pub/Sub server."""
