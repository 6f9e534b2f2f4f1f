"""supervisor.memory_fit: the default in-flight budget shrinks to fit a container's memory
limit; settings that cannot fit are refused."""

from __future__ import annotations

import dataclasses

import pytest

from contracts import defaults
from supervisor.memory_fit import MIB, MemoryTooSmall, fit_to_memory, memory_needed
from supervisor.settings import SupervisorSettings
from workers.decoder_settings import DecoderSettings

GIVEN = frozenset({"workers", "decoder.max_in_flight_bytes"})


def test_workers_8_at_the_defaults_is_modelled_near_the_benchmarks_figures():
    needed = memory_needed(SupervisorSettings(workers=8), in_flight_bytes=0)
    # bench/RESULTS.md: ~195-230 MiB PSS for --workers 8, before anything is in flight.
    assert 195 * MIB <= needed - 2 * defaults.DEFAULT_BATCH_BYTES <= 260 * MIB


def test_no_limit_or_room_enough_changes_nothing():
    settings = SupervisorSettings(workers=8)
    assert fit_to_memory(settings, None) is settings
    assert fit_to_memory(settings, 4096 * MIB) is settings


def test_the_default_budget_shrinks_to_fit_the_limit():
    settings = SupervisorSettings(workers=8)
    fitted = fit_to_memory(settings, 384 * MIB)
    budget = fitted.decoder.max_in_flight_bytes
    assert 64 * 1024 <= budget < defaults.DEFAULT_MAX_IN_FLIGHT_BYTES
    assert memory_needed(fitted) <= 384 * MIB
    assert fitted.workers == 8 and fitted.writer == settings.writer


def test_a_budget_set_by_hand_is_never_shrunk_but_refused():
    settings = SupervisorSettings(
        workers=8, decoder=DecoderSettings(max_in_flight_bytes=64 * MIB), given=GIVEN
    )
    with pytest.raises(MemoryTooSmall, match=r"--max-in-flight-bytes 67108864 .* limit of 512 MiB"):
        fit_to_memory(settings, 512 * MIB)


def test_too_many_decoders_asked_for_are_refused():
    with pytest.raises(MemoryTooSmall, match="--workers 64"):
        fit_to_memory(SupervisorSettings(workers=64, given=frozenset({"workers"})), 256 * MIB)


def test_the_default_worker_count_is_lowered_to_fit():
    # 64 usable CPUs and a 1 GiB limit, nothing set by the operator: a run, not exit 3.
    fitted = fit_to_memory(SupervisorSettings(workers=64), 1024 * MIB)
    assert 1 <= fitted.workers < 64
    assert memory_needed(fitted) <= 1024 * MIB
    assert fitted.decoder.max_in_flight_bytes >= 64 * 1024
    # As many decoders as fit: one more would not, even at the smallest budget.
    more = SupervisorSettings(workers=fitted.workers + 1)
    assert memory_needed(more, in_flight_bytes=64 * 1024) > 1024 * MIB


def test_a_budget_given_equal_to_the_default_is_not_lowered():
    settings = SupervisorSettings(workers=8, given=frozenset({"decoder.max_in_flight_bytes"}))
    fitted = fit_to_memory(settings, 384 * MIB)
    assert fitted.decoder.max_in_flight_bytes == defaults.DEFAULT_MAX_IN_FLIGHT_BYTES
    assert fitted.workers < 8 and memory_needed(fitted) <= 384 * MIB
    both = dataclasses.replace(settings, given=GIVEN)
    with pytest.raises(MemoryTooSmall, match="--workers 8"):
        fit_to_memory(both, 384 * MIB)
