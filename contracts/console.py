"""What every console script shares: one spelling of its common options, read the same way.

Owns: `CouldNotStart` (exit code 3 of `contracts.exit_codes`), `--config` (a TOML file,
also MINISCAN_CONFIG, that sets any option: the command line wins over the environment,
which wins over the file, which wins over the defaults: click's own order once the file is
its `default_map`), `--version`, the options that name the same thing everywhere
(`--project`, `--topic`, `--subscription`, `--db`, with their MINISCAN_* variables shown in
--help), and `DATABASE_TARGET`, which refuses at the door a `--db` that is neither a
PostgreSQL URL nor a file in an existing folder.

The file's top-level keys are options every command may take (`project = "p2"`); a table
named after the command (`[supervisor]`, `[scanner]`, `[demo]`, `[setup]`,
`[dead-letters.list]`) sets that command's own, over the top-level ones. Keys are option
names without dashes (`batch-size` or `batch_size`), valued as typed on the command line.

Never: read the environment itself (click does, from the names declared here), open a
store, or reach Pub/Sub.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from typing import Any

import click

from contracts import defaults
from contracts.exit_codes import EXIT_CODES_HELP, EXIT_STARTUP

CONFIG_ENV = "MINISCAN_CONFIG"
PROJECT_ENVS = ("MINISCAN_PROJECT", "PUBSUB_PROJECT_ID")  # Google's own name still counts
TOPIC_ENV = "MINISCAN_TOPIC"
SUBSCRIPTION_ENV = "MINISCAN_SUBSCRIPTION"
ACCEPTED_DB = "a SQLite file path (in an existing folder) or a postgresql:// or postgres:// URL"
POSTGRES_SCHEMES = ("postgresql", "postgres")
# `scheme:/...`: what a URL looks like, so that `mysql://x/y` or a typo such as
# `postgressql://` is refused instead of becoming a SQLite file named after it.
URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:/")

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def db_target_problem(value: str) -> str | None:
    """Why `value` is no `--db` miniscan accepts, or None. The default data/ folder is the
    one folder miniscan creates; any other must exist, so that a typo never creates a tree."""
    if value.startswith(tuple(f"{scheme}://" for scheme in POSTGRES_SCHEMES)):
        return None
    if URL_SCHEME.match(value):
        return f"{value!r} is not {ACCEPTED_DB}"
    folder = os.path.dirname(os.path.abspath(value))
    default_folder = os.path.abspath(os.path.dirname(defaults.DEFAULT_DB_PATH))
    if os.path.isdir(folder) or folder == default_folder:
        return None
    return f"folder {folder} does not exist (create it first); --db takes {ACCEPTED_DB}"


class CouldNotStart(click.ClickException):
    """One `Error: ...` line and exit code 3: a part the command needs is unreachable,
    refused it or is busy."""

    exit_code = EXIT_STARTUP


class DatabaseTarget(click.ParamType):
    name = "PATH|URL"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None):
        problem = db_target_problem(str(value))
        if problem:
            self.fail(problem, param, ctx)
        return str(value)


DATABASE_TARGET = DatabaseTarget()


def version_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.version_option(package_name="miniscan")(command)


def config_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """`--config FILE` (env MINISCAN_CONFIG), read before every other option."""
    return click.option(
        "--config",
        type=click.Path(dir_okay=False),
        envvar=CONFIG_ENV,
        show_envvar=True,
        is_eager=True,
        expose_value=False,
        callback=_load_config,
        help="TOML file setting any option (key = option name without --); the command line "
        "and the environment win over it.",
    )(command)


def _load_config(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if not value:
        return
    try:
        with open(value, "rb") as file:
            document = tomllib.load(file)
    except OSError as exc:
        raise click.BadParameter(f"cannot read {value}: {exc.strerror}", ctx, param) from None
    except tomllib.TOMLDecodeError as exc:
        raise click.BadParameter(f"{value} is not TOML: {exc}", ctx, param) from None
    try:
        found = config_defaults(document, _section(ctx), _option_names(ctx.command))
    except KeyError as exc:
        raise click.BadParameter(f"{value}: {exc.args[0]}", ctx, param) from None
    ctx.default_map = {**(ctx.default_map or {}), **found}


def config_defaults(
    document: Mapping[str, Any], section: str, options: Mapping[str, str]
) -> dict[str, Any]:
    """The `default_map` of one command from a configuration document: its top-level keys
    that name one of the command's `options` (option name -> parameter name), then its own
    table's, every one of which must name an option (KeyError says which does not)."""
    table: Any = document
    for part in section.split("."):
        table = table.get(part, {}) if isinstance(table, Mapping) else {}
    found = {
        options[_key(key)]: value
        for key, value in document.items()
        if not isinstance(value, Mapping) and _key(key) in options
    }
    for key, value in table.items():
        if _key(key) not in options:
            raise KeyError(f"[{section}] sets {key}, which is no option of this command")
        found[options[_key(key)]] = value
    return found


def _key(key: str) -> str:
    return key.replace("_", "-")


def _option_names(command: click.Command) -> dict[str, str]:
    return {
        name[2:]: param.name
        for param in command.params
        if isinstance(param, click.Option) and param.name and param.expose_value
        for name in param.opts
        if name.startswith("--")
    }


def _section(ctx: click.Context) -> str:
    """`supervisor`, `setup`, `dead-letters.list`: the command's path below its group."""
    names = []
    while ctx.parent is not None:
        names.append(ctx.command.name or "")
        ctx = ctx.parent
    return ".".join(reversed(names)) if names else ctx.command.name or ""


def shared_option(*names: str, envvar: str | list[str], default: str, **kwargs: Any) -> Decorator:
    """An option every command that takes it spells alike: its variable and default shown."""
    return click.option(
        *names, envvar=envvar, show_envvar=True, default=default, show_default=True, **kwargs
    )


project_option = shared_option(
    "--project", envvar=list(PROJECT_ENVS), default=defaults.DEFAULT_PROJECT,
    help="Google Cloud project.",
)  # fmt: skip


def topic_option(help_text: str) -> Decorator:
    """`--topic`, defaulting to the deployment's topic; `help_text` says what it is for."""
    return shared_option(
        "--topic", envvar=TOPIC_ENV, default=defaults.DEFAULT_TOPIC, help=help_text
    )


def subscription_option(help_text: str) -> Decorator:
    return shared_option(
        "--subscription", envvar=SUBSCRIPTION_ENV, default=defaults.DEFAULT_SUBSCRIPTION,
        help=help_text,
    )  # fmt: skip


def connect_timeout_option(help_text: str) -> Decorator:
    """`--connect-timeout` in seconds (env MINISCAN_CONNECT_TIMEOUT); `help_text` says what
    it bounds for this command."""
    return click.option(
        "--connect-timeout", envvar="MINISCAN_CONNECT_TIMEOUT", show_envvar=True,
        type=click.FloatRange(min=0, min_open=True), default=defaults.DEFAULT_CONNECT_TIMEOUT_S,
        show_default=True, help=help_text,
    )  # fmt: skip


def db_option(help_text: str) -> Decorator:
    """`--db` (env MINISCAN_DB), checked by `DATABASE_TARGET`."""
    return shared_option(
        "--db", "db_path", envvar=defaults.DB_PATH_ENV, default=defaults.DEFAULT_DB_PATH,
        type=DATABASE_TARGET, help=help_text,
    )  # fmt: skip


def share_basics(command: click.Command) -> None:
    """Give `command`, and every command below it when it is a group, what every miniscan
    command has: `--config` and the exit-code table at the end of its --help."""
    if isinstance(command, click.Group):
        for child in command.commands.values():
            share_basics(child)
        return
    command.epilog = EXIT_CODES_HELP
    if not any(param.name == "config" for param in command.params):
        config_option(command)
