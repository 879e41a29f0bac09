"""The Locust request events a finished cycle fires (bootbench/user.py), in-process on a real Environment."""

from __future__ import annotations

import pytest
from locust.env import Environment

from bootbench.providers import CycleError
from bootbench.samples import ErrorKind, Sample
from bootbench.user import BootUser


@pytest.fixture
def fired():
    """A BootUser on an Environment of its own, and the request events it fires."""
    environment = Environment(user_classes=[BootUser])
    events: list[dict] = []
    environment.events.request.add_listener(lambda **kwargs: events.append(kwargs))
    return BootUser(environment), events


def test_a_failed_cycle_fires_its_phases_and_one_failure_with_its_error_kind(fired):
    user, events = fired
    sample = Sample(4, "local", 1, "t", False, error_kind=ErrorKind.AUDIO_TIMEOUT, error="no audio within 2 s",
                    connect_ms=3.0, session_start_ms=20.0)
    user._fire_events(sample, "first_response_ms", "openai")
    assert [(e["name"], e["response_time"]) for e in events] == [
        ("connect_ms", 3.0), ("session_start_ms", 20.0), ("first_response_ms", None)]
    failure = events[-1]["exception"]
    assert isinstance(failure, CycleError) and failure.kind == ErrorKind.AUDIO_TIMEOUT
    assert str(failure) == "audio_timeout: no audio within 2 s" and events[-1]["request_type"] == "openai"


def test_a_failed_sample_without_an_error_kind_still_fires_its_failure(fired):
    """It once fell back to CycleError("unknown", ...), which raised ValueError: "unknown" is not an ErrorKind."""
    user, events = fired
    sample = Sample(9, "local", 1, "t", False, error_kind=None, error="the worker lost it")
    user._fire_events(sample, None, "aivoco")
    (event,) = events
    assert (event["name"], event["response_time"], event["context"]) == ("first_response_ms", None, {"iteration": 9})
    assert str(event["exception"]) == "the worker lost it"
