"""The settings: each default written once, on its field, and the command line built from
them (`contracts.flags`, `supervisor.cli`): --help shows each field's default, the options
parse back into the same settings, and the derived values keep their rules."""

from __future__ import annotations

import dataclasses
import os
import pickle
import re

import pytest
from click.testing import CliRunner

from contracts.flags import flags_of
from store.writer_settings import WriterSettings
from supervisor.cli import SECTIONS, main, settings_from_options
from supervisor.cpu_busy import usable_cpus
from supervisor.settings import SupervisorSettings
from workers.decoder_settings import DecoderSettings

# Other code, the demo launcher and the tests pass these flags and variables: they stay.
ENVIRONMENT = {
    "--workers": ["MINISCAN_WORKERS"],
    "--project": ["MINISCAN_PROJECT", "PUBSUB_PROJECT_ID"],
    "--subscription": ["MINISCAN_SUBSCRIPTION"],
    "--db": ["MINISCAN_DB"],
    "--batch-size": ["MINISCAN_BATCH_SIZE"],
    "--batch-bytes": ["MINISCAN_BATCH_BYTES"],
    "--batch-timeout": ["MINISCAN_BATCH_TIMEOUT"],
    "--load-linger": ["MINISCAN_LOAD_LINGER"],
    "--max-in-flight": ["MINISCAN_MAX_IN_FLIGHT"],
    "--max-in-flight-bytes": ["MINISCAN_MAX_IN_FLIGHT_BYTES"],
    "--metrics-host": ["MINISCAN_METRICS_HOST"],
    "--metrics-port": ["MINISCAN_METRICS_PORT"],
    "--shutdown-timeout": ["MINISCAN_SHUTDOWN_TIMEOUT"],
    "--child-timeout": ["MINISCAN_CHILD_TIMEOUT"],
    "--restart-max": ["MINISCAN_RESTART_MAX"],
    "--restart-window": ["MINISCAN_RESTART_WINDOW"],
    "--synchronous": ["MINISCAN_SYNCHRONOUS"],
    "--log-level": ["MINISCAN_LOG_LEVEL"],
    "--log-format": ["MINISCAN_LOG_FORMAT"],
}


@pytest.fixture(autouse=True)
def no_settings_in_the_environment(monkeypatch):
    for name in [*os.environ]:
        if name.startswith("MINISCAN_") or name == "PUBSUB_PROJECT_ID":
            monkeypatch.delenv(name)


def every_flag():
    """(flag, the value --help must show as its default) for each flag of each section."""
    defaults = SupervisorSettings()
    for section, settings in SECTIONS.items():
        holder = defaults if section is None else getattr(defaults, section)
        for name, flag in flags_of(settings):
            yield flag, flag.to_typed(getattr(holder, name))


def test_help_shows_each_settings_default():
    result = CliRunner().invoke(main, ["--help"], terminal_width=1000, max_content_width=1000)
    assert result.exit_code == 0
    # One block per option: its line, and the next when its name is too long to share one.
    blocks = [" ".join(block.split()) for block in re.split(r"\n(?=  -)", result.output)]
    shown = {}
    for block in blocks:
        found = re.match(r"(--[a-z-]+)\b.*?\[(?:env var: [^;]+; )?default: ([^;\]]+)", block)
        if found:
            shown[found[1]] = found[2]
    flags = list(every_flag())
    assert sorted(shown) == sorted(flag.name for flag, _ in flags)
    for flag, default in flags:
        if isinstance(flag.show_default, str):  # a default computed on each machine
            assert shown[flag.name] == f"({flag.show_default})"
        else:
            assert shown[flag.name] == str(default), flag.name
    assert SupervisorSettings().workers == usable_cpus()


def test_every_flag_keeps_its_name_and_environment_variables():
    declared = {
        param.opts[0]: [param.envvar] if isinstance(param.envvar, str) else param.envvar
        for param in main.params
        if param.name not in ("config", "version")  # every console script's (contracts.console)
    }
    assert {flag: declared.get(flag) for flag in ENVIRONMENT} == ENVIRONMENT
    for flag, envvars in declared.items():  # a flag added later follows the same rule
        if flag not in ENVIRONMENT:
            assert envvars == ["MINISCAN_" + flag[2:].replace("-", "_").upper()]


def test_no_options_parse_into_the_default_settings_and_each_flag_into_its_field():
    assert settings_from_options(main.make_context("m", []).params) == SupervisorSettings()
    options = main.make_context("m", [
        "--batch-timeout", "25", "--load-linger", "0", "--synchronous", "normal",
        "--log-level", "debug", "--max-in-flight", "300", "--child-timeout", "8",
        "--project", "p", "--db", "x.db",
    ]).params  # fmt: skip
    settings = settings_from_options(options)
    assert settings.writer == WriterSettings(
        db_path="x.db", synchronous="NORMAL", batch_timeout_s=0.025, load_linger_s=0.0,
        busy_timeout_ms=2000,
    )  # fmt: skip
    assert settings.decoder == DecoderSettings(project="p", max_in_flight=300)
    assert (settings.log_level, settings.child_timeout_s) == ("DEBUG", 8.0)


def test_derived_settings_keep_their_rules():
    assert DecoderSettings().pull_batch == 1000
    assert DecoderSettings(max_in_flight=300).pull_batch == 300  # never more than the budget
    assert SupervisorSettings().writer.busy_timeout_ms == 5000
    # The writer's lock wait stays well inside the stall timeout: a quarter of it, at most 5 s.
    assert SupervisorSettings(child_timeout_s=8).writer.busy_timeout_ms == 2000
    assert SupervisorSettings(child_timeout_s=1.0).writer.busy_timeout_ms == 250


def test_settings_are_frozen_and_cross_to_a_child_whole():
    settings = SupervisorSettings(workers=3, decoder=DecoderSettings(subscription="s"))
    assert pickle.loads(pickle.dumps(settings)) == settings
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.workers = 4  # type: ignore[misc]
