"""What every console script shares (issue 28): one configuration story (the same MINISCAN_*
variables, a TOML file, the command line over the environment over the file over the
defaults), `--version`, one exit-code table in every --help, and bad input refused at the
door: a `--db` of another scheme or in a missing folder, an unknown dead-letter reason, a
busy port for `miniscan emulator`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from commands.miniscan import main as miniscan
from contracts.exit_codes import EXIT_STARTUP, EXIT_USAGE
from contracts.reasons import ALL_REASONS
from demo.cli import demo
from scanner.cli import main as scanner
from supervisor.cli import main as supervisor
from supervisor.cli import settings_from_options

BIN = Path(sys.executable).parent


def supervisor_settings(args: list[str], env: dict[str, str] | None = None):
    """The settings `miniscan-supervisor ARGS` would run with, under `env` only."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env or {})
    try:
        with supervisor.make_context("miniscan-supervisor", list(args)) as ctx:
            return settings_from_options(ctx.params)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def write_config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "miniscan.toml"
    path.write_text(text)
    return str(path)


# --- the order: command line, environment, file, defaults ---------------------------------


def test_command_line_over_environment_over_file_over_defaults(tmp_path) -> None:
    config = write_config(
        tmp_path,
        'subscription = "from-file"\nproject = "file-project"\nbatch-size = 7\n'
        "[supervisor]\nmax_in_flight = 33\nbatch-size = 8\n",
    )
    env = {"MINISCAN_CONFIG": config, "MINISCAN_SUBSCRIPTION": "from-env",
           "MINISCAN_PROJECT": "env-project"}  # fmt: skip
    settings = supervisor_settings(["--project", "cli-project"], env)
    assert settings.decoder.project == "cli-project"  # command line over all
    assert settings.decoder.subscription == "from-env"  # environment over the file
    assert settings.decoder.max_in_flight == 33  # the command's own table
    assert settings.writer.batch_size == 8  # its table over the file's top level
    assert settings.writer.synchronous == "FULL"  # nothing set it: the default
    assert supervisor_settings(["--config", config]).decoder.subscription == "from-file"
    assert supervisor_settings([]).decoder.subscription == "scan-sub"


def test_a_config_file_key_the_command_does_not_take_is_refused(tmp_path) -> None:
    config = write_config(tmp_path, "[supervisor]\nbatch-sise = 8\n")
    result = CliRunner().invoke(supervisor, ["--config", config])
    assert result.exit_code == EXIT_USAGE
    assert "[supervisor] sets batch-sise, which is no option" in result.output


def test_a_config_file_that_is_not_toml_is_refused(tmp_path) -> None:
    config = write_config(tmp_path, "batch-size = \n")
    result = CliRunner().invoke(supervisor, ["--config", config])
    assert result.exit_code == EXIT_USAGE and "is not TOML" in result.output


def test_every_command_reads_the_same_variables(tmp_path) -> None:
    env = {"MINISCAN_PROJECT": "p2", "MINISCAN_SUBSCRIPTION": "sub2", "MINISCAN_TOPIC": "t2",
           "MINISCAN_DB": str(tmp_path / "env.db")}  # fmt: skip
    setup = miniscan.get_command(click.Context(miniscan), "setup")
    for command, expected in (
        (setup, {"project": "p2", "subscription": "sub2", "topic": "t2"}),
        (scanner, {"project": "p2", "topic": "t2"}),
        (demo, {"db_path": env["MINISCAN_DB"]}),
        (miniscan.get_command(click.Context(miniscan), "query"), {"db_path": env["MINISCAN_DB"]}),
    ):
        os.environ.update(env)
        try:
            with command.make_context(command.name, []) as ctx:
                assert {name: ctx.params[name] for name in expected} == expected, command.name
        finally:
            for name in env:
                os.environ.pop(name)
    settings = supervisor_settings([], env)
    assert (settings.decoder.project, settings.decoder.subscription) == ("p2", "sub2")
    assert settings.writer.db_path == env["MINISCAN_DB"]


def commands_of(group: click.Group, path: tuple[str, ...] = ()):
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from commands_of(command, (*path, name))
        else:
            yield (*path, name), command


@pytest.mark.parametrize("script", ["miniscan", "miniscan-supervisor", "miniscan-scanner"])
def test_every_console_script_has_version_and_the_exit_code_table(script) -> None:
    version = subprocess.run([BIN / script, "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and "version 0.1.0" in version.stdout
    helps = [[script, "--help"]]
    if script == "miniscan":
        helps = [[script, *path, "--help"] for path, _ in commands_of(miniscan)]
    for argv in helps:
        shown = subprocess.run([BIN / argv[0], *argv[1:]], capture_output=True, text=True)
        assert "3 could not start" in shown.stdout, argv
        assert "5 forced stop" in shown.stdout, argv
        assert "MINISCAN_CONFIG" in shown.stdout, argv


def test_help_shows_each_options_variable() -> None:
    shown = CliRunner().invoke(supervisor, ["--help"], terminal_width=200).output
    for variable in ("MINISCAN_PROJECT", "MINISCAN_SUBSCRIPTION", "MINISCAN_DB",
                     "MINISCAN_BATCH_SIZE", "MINISCAN_WORKERS"):  # fmt: skip
        assert variable in shown


# --- bad input refused at the door --------------------------------------------------------


@pytest.mark.parametrize("url", ["mysql://x/y", "postgressql://u@h/db", "sqlite:///x.db"])
def test_a_db_url_of_another_scheme_is_refused_and_creates_nothing(tmp_path, url) -> None:
    for command, args in ((supervisor, []), (demo, []), (miniscan, ["stats"])):
        result = CliRunner().invoke(command, [*args, "--db", url])
        assert result.exit_code == EXIT_USAGE, result.output
        last = result.output.strip().splitlines()[-1]
        assert "postgresql://" in last and "postgres://" in last and "SQLite file" in last
    assert not list(Path.cwd().glob(url.split(":")[0] + "*"))


def test_a_db_in_a_missing_folder_is_refused_and_not_created(tmp_path) -> None:
    missing = tmp_path / "nowhere" / "deeper" / "x.db"
    for command, args in ((supervisor, []), (demo, []), (miniscan, ["query"])):
        result = CliRunner().invoke(command, [*args, "--db", str(missing)])
        assert result.exit_code == EXIT_USAGE, result.output
        assert f"folder {missing.parent} does not exist" in result.output
    assert not (tmp_path / "nowhere").exists()


def test_the_default_data_folder_is_accepted_though_missing(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert supervisor_settings([]).writer.db_path == "data/scan_results.db"
    with demo.make_context("demo", ["--db", "data/other.db"]) as ctx:
        assert ctx.params["db_path"] == "data/other.db"


def test_an_unknown_reason_lists_the_known_ones(tmp_path) -> None:
    result = CliRunner().invoke(
        miniscan, ["dead-letters", "list", "--reason", "bogus", "--db", str(tmp_path / "x.db")]
    )
    assert result.exit_code == EXIT_USAGE
    assert all(reason in result.output for reason in ALL_REASONS)


def test_emulator_on_a_busy_port_says_one_line_of_its_own() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [BIN / "miniscan", "emulator", "--port", str(port)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert done.returncode == EXIT_STARTUP
    assert done.stdout == ""
    assert done.stderr == f"Error: cannot listen on 127.0.0.1:{port}: Address already in use\n"


@pytest.mark.emulator
def test_setup_reads_project_and_subscription_from_the_environment(pubsub_emulator) -> None:
    suffix = uuid.uuid4().hex[:10]
    env = {"MINISCAN_PROJECT": f"p-{suffix}", "MINISCAN_SUBSCRIPTION": f"sub-{suffix}",
           "MINISCAN_TOPIC": f"topic-{suffix}"}  # fmt: skip
    result = CliRunner().invoke(miniscan, ["setup"], env=env)
    assert result.exit_code == 0, result.output
    assert f"projects/p-{suffix}/subscriptions/sub-{suffix}" in result.stdout
