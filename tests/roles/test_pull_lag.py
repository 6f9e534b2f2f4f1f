"""The consumer-lag gauge (issue 27): a decoder's pull shows how long its oldest message
waited since it was published, and a pull that finds nothing (caught up) shows 0. A
decoder that may not pull (the steering holds it back) or no longer pulls shows 0 too, so
the tree's livemax is over the latest pulls of the decoders that pull."""

from __future__ import annotations

import time

import pytest
from prometheus_client import REGISTRY
from role_doubles import decoder, pulled, stop_settlers

from broker.subscription import PulledMessage
from contracts import metrics
from workers.puller import pull_lag

LAG = "miniscan_pull_lag_seconds"


@pytest.fixture(autouse=True)
def _stop_settlers():
    yield
    stop_settlers()


def published(ago_s: float, i: int = 0) -> PulledMessage:
    message = pulled(1, start=i)[0]
    return message._replace(publish_time=time.time() - ago_s)


def test_lag_is_the_age_of_the_oldest_message_and_never_negative():
    now = 1000.0
    messages = [
        m._replace(publish_time=t) for m, t in zip(pulled(3), (990.0, 940.0, 999.0), strict=True)
    ]
    assert pull_lag(messages, now) == 60.0
    assert pull_lag([], now) == 0.0
    assert pull_lag([messages[0]._replace(publish_time=1001.0)], now) == 0.0  # clock skew


def test_a_pull_sets_the_gauge_and_an_empty_one_clears_it():
    role, _, _ = decoder([[published(120, 0), published(30, 1)], []])
    assert role.pull_once() == 2
    assert REGISTRY.get_sample_value(LAG) == pytest.approx(120, abs=5)
    role.pull_once()  # nothing left: caught up
    assert REGISTRY.get_sample_value(LAG) == 0


def test_the_gauge_exists_from_start():
    metrics.PULL_LAG.set(42)
    metrics.export_known_labels()
    assert REGISTRY.get_sample_value(LAG) == 0


def test_a_decoder_held_back_by_the_steering_stops_reporting_its_old_lag(monkeypatch):
    role, _, _ = decoder([[published(600, 0)], [published(5, 1)]])
    assert role.pull_once() == 1
    assert REGISTRY.get_sample_value(LAG) == pytest.approx(600, abs=5)
    monkeypatch.setattr(role.puller.share, "may_pull", lambda: False)
    assert role.pull_once() == 0  # may not pull now: its 600 s are stale
    assert REGISTRY.get_sample_value(LAG) == 0


def test_a_decoder_that_stops_pulling_clears_its_lag():
    role, _, _ = decoder([[published(600, 0)]])
    assert role.pull_once() == 1
    assert REGISTRY.get_sample_value(LAG) == pytest.approx(600, abs=5)
    role.pulling = False
    role.puller._loop()  # returns at once: the role stopped pulling
    assert REGISTRY.get_sample_value(LAG) == 0
