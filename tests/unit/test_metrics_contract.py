"""Labelled series the dashboard and alerts read exist at 0 from start-up."""

from __future__ import annotations

from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from contracts import metrics
from contracts.reasons import ALL_REASONS


def test_every_dead_letter_reason_and_restart_role_is_exported_from_start():
    metrics.export_known_labels()
    samples = {
        (sample.name, tuple(sorted(sample.labels.items())))
        for family in text_string_to_metric_families(generate_latest(REGISTRY).decode())
        for sample in family.samples
    }
    for reason in ALL_REASONS:
        assert ("miniscan_messages_dead_lettered_total", (("reason", reason),)) in samples
    for role in ("writer", "decoder"):
        assert ("miniscan_child_restarts_total", (("role", role),)) in samples
