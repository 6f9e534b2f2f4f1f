"""`miniscan-supervisor`: the command that runs the whole pipeline.

Owns: declaring one option for each flag the settings carry (`contracts.flags`: each option's
name, help, range and default come from its settings field, and each is also readable from
its MINISCAN_* environment variable, shown in --help; `--config` and `--version` are
`contracts.console`'s), turning the options into a `SupervisorSettings`, and
handing over to `supervisor.run`, which turns a bad setup into a one-line error and exit
code 3 (see `contracts.exit_codes`).

Never: write a default or a range (the settings classes do), hold pipeline logic, or import
prometheus_client before the metrics directory is set.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click
from click.core import ParameterSource

from contracts.console import DATABASE_TARGET, config_option, version_option
from contracts.durations import parse_duration
from contracts.exit_codes import EXIT_CODES_HELP
from contracts.flags import Flag, flags_of
from store.writer_settings import WriterSettings
from supervisor.settings import SupervisorSettings
from workers.decoder_settings import DecoderSettings

DEFAULTS = SupervisorSettings()  # --help shows these

# Where each role's flags live in `SupervisorSettings`; its own fields are at the top.
SECTIONS: dict[str | None, type] = {
    None: SupervisorSettings,
    "decoder": DecoderSettings,
    "writer": WriterSettings,
}

CONTEXT = {"auto_envvar_prefix": "MINISCAN", "help_option_names": ["-h", "--help"]}


class Duration(click.ParamType):
    """Seconds, or a duration such as 90s, 30m, 1h30m, within the flag's range."""

    name = "duration"

    def __init__(self, low: float | None, high: float | None) -> None:
        self.low, self.high = low, high

    def convert(self, value: Any, param: Any, ctx: Any) -> float:
        try:
            # A number (a default, or from --config) goes through the same checks as text.
            seconds = parse_duration(str(value) if isinstance(value, int | float) else value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        if (self.low is not None and seconds < self.low) or (
            self.high is not None and seconds > self.high
        ):
            self.fail(f"{value} is outside {self.low}..{self.high} seconds", param, ctx)
        return seconds


def _option_type(flag: Flag, default: Any) -> click.ParamType | type:
    if flag.duration:
        return Duration(flag.low, flag.high)
    if flag.choices:
        return click.Choice(flag.choices, case_sensitive=not flag.upper)
    if flag.path:
        return DATABASE_TARGET
    if isinstance(flag.to_typed(default), int):
        return click.IntRange(flag.low, flag.high)
    if isinstance(default, float):
        return click.FloatRange(flag.low, flag.high)
    return str


def _section_defaults(section: str | None) -> object:
    return DEFAULTS if section is None else getattr(DEFAULTS, section)


def declare_options(command: Callable[..., None]) -> Callable[..., None]:
    """Add one click option for each flag of each settings section, named after its field."""
    declared = [
        (section, name, flag)
        for section, settings in SECTIONS.items()
        for name, flag in flags_of(settings)
    ]
    for section, name, flag in reversed(declared):  # click lists the last one added first
        default = getattr(_section_defaults(section), name)
        command = click.option(
            flag.name,
            _param(section, name),
            envvar=flag.envvar[0] if len(flag.envvar) == 1 else list(flag.envvar),
            type=_option_type(flag, default),
            default=flag.to_typed(default),
            show_default=flag.show_default,
            show_envvar=True,
            help=flag.help,
        )(command)
    return command


def _param(section: str | None, name: str) -> str:
    return name if section is None else f"{section}__{name}"


def settings_from_options(
    options: dict[str, Any], given: frozenset[str] = frozenset()
) -> SupervisorSettings:
    """The run's settings from the parsed options, each converted back to its field's unit;
    `given` names the ones the operator set (`given_settings`)."""
    fields: dict[str | None, dict[str, Any]] = {section: {} for section in SECTIONS}
    for section, settings in SECTIONS.items():
        for name, flag in flags_of(settings):
            fields[section][name] = flag.to_field(options[_param(section, name)])
    return SupervisorSettings(
        decoder=DecoderSettings(**fields["decoder"]),
        writer=WriterSettings(**fields["writer"]),
        given=given,
        **fields[None],
    )


def given_settings(ctx: click.Context) -> frozenset[str]:
    """The fields whose value did not come from its default: a flag, its environment
    variable or --config (click's default map) gave it."""
    given = set()
    for section, settings in SECTIONS.items():
        for name, _ in flags_of(settings):
            source = ctx.get_parameter_source(_param(section, name))
            if source not in (None, ParameterSource.DEFAULT):
                given.add(name if section is None else f"{section}.{name}")
    return frozenset(given)


@click.command("supervisor", context_settings=CONTEXT, epilog=EXIT_CODES_HELP)
@config_option
@version_option
@declare_options
def main(**options: Any) -> None:
    """Pull scan results from Pub/Sub, decode them in N processes and keep the newest scan per
    (ip, port, service) in SQLite or PostgreSQL, acknowledging each message only after it is
    committed. Honours PUBSUB_EMULATOR_HOST."""
    settings = settings_from_options(options, given_settings(click.get_current_context()))
    from supervisor.run import run_supervisor

    sys.exit(run_supervisor(settings))
