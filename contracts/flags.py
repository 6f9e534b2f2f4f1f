"""How a setting is offered on the command line, as plain data on the setting's own field.

Owns: `Flag` (the option's name, help, range or choices, and the unit it is typed in) and
`setting`, which writes a settings field's default and its `Flag` in one place, so that a
setting is declared once: its settings class holds both, and `supervisor.cli` builds the
option from them.

Never: import click or read the environment (the command line does), or hold a default
itself: the default lives on the field.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

FLAG = "flag"  # the key of a field's metadata that holds its Flag


@dataclass(frozen=True)
class Flag:
    name: str  # "--batch-size"; its environment variable is MINISCAN_BATCH_SIZE
    help: str | None = None
    low: float | None = None  # inclusive range of the value as typed on the command line
    high: float | None = None
    choices: tuple[str, ...] = ()
    upper: bool = False  # choices match in any case and are kept upper-case
    # The field holds flag value / per: a field in seconds typed in milliseconds has 1000.
    per: int = 1
    envvars: tuple[str, ...] = ()  # other than MINISCAN_<NAME>: read these, in this order
    path: bool = False  # a database: a file path (not a folder), or a PostgreSQL URL
    duration: bool = False  # seconds, or a duration such as 90m (`contracts.durations`)
    show_default: bool | str = True  # a string stands in for a default computed per machine

    @property
    def envvar(self) -> tuple[str, ...]:
        return self.envvars or ("MINISCAN_" + self.name.lstrip("-").replace("-", "_").upper(),)

    def to_field(self, typed: Any) -> Any:
        """The field's value from the value typed on the command line."""
        if self.per != 1:
            return typed / self.per
        return typed.upper() if self.upper else typed

    def to_typed(self, value: Any) -> Any:
        """The value as typed on the command line from the field's value (for the default)."""
        return int(value * self.per) if self.per != 1 else value


def setting(default: Any = dataclasses.MISSING, flag: Flag | None = None, *,
            default_factory: Callable[[], Any] | None = None) -> Any:  # fmt: skip
    """A settings field: its default, and the flag that sets it (None: not a flag)."""
    metadata = {FLAG: flag} if flag is not None else {}
    if default_factory is not None:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def flags_of(settings: type) -> list[tuple[str, Flag]]:
    """(field name, Flag) of every field of a settings dataclass that a flag sets."""
    return [(f.name, f.metadata[FLAG]) for f in dataclasses.fields(settings) if FLAG in f.metadata]
