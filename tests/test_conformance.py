"""The conformance kit (bootbench.testing) over every built-in provider, and proof that it catches broken drivers.

Parametrized over the provider table's built-ins (providers.registry.BUILTINS): a provider added there joins
these tests with a script of its service in bootbench/testing/scripts.py (the kit says so when one is missing).
In-process: the fake service and the reference server's app run in a thread of the test process.
"""

from __future__ import annotations

import time

import pytest

from bootbench import providers, testing
from bootbench.providers import registry
from bootbench.providers.base import CycleError
from bootbench.providers.openai_realtime import OpenAIRealtimeDriver
from bootbench.samples import ErrorKind

BUILTINS = tuple(registry.BUILTINS)
EVERY_TURN_MODE = [(name, mode) for name in BUILTINS for mode in providers.get(name).turn_modes]


@pytest.fixture(autouse=True, scope="module")
def _tuned():
    providers.install_tuning()  # the frame tuning every run's users have


@pytest.mark.parametrize("scenario", testing.SCENARIOS)
@pytest.mark.parametrize("provider", BUILTINS)
def test_every_builtin_conforms_against_a_scripted_fake_service(provider, scenario):
    outcome = testing.check(providers.get(provider), testing.script_for(provider), scenario)
    expected = {"refused_auth": "auth_failed", "closed_socket": "disconnected", "server_error": "server_error",
                "session_timeout": "session_timeout", "audio_timeout": "audio_timeout"}.get(scenario)
    assert (outcome.error.kind if outcome.error else None) == expected
    if expected is None:
        assert outcome.timelines[-1].first_audio is not None
        assert len(outcome.timelines) == (2 if scenario == "turns" else 1)


@pytest.mark.parametrize("provider, turn", EVERY_TURN_MODE)
def test_every_builtin_stamps_in_order_in_each_of_its_turn_modes(provider, turn):
    testing.check(providers.get(provider), testing.script_for(provider), "stamp_order", turn=turn)
    testing.check_against_reference_server(providers.get(provider), "stamp_order", turn=turn)


@pytest.mark.slow  # the reference server's app, in-process: about 5 s for all
@pytest.mark.parametrize("scenario", testing.SCENARIOS)
@pytest.mark.parametrize("provider", BUILTINS)
def test_every_builtin_conforms_against_the_reference_servers_emulation(provider, scenario):
    try:
        outcome = testing.check_against_reference_server(providers.get(provider), scenario)
    except testing.NotEmulated as why:
        pytest.skip(str(why))  # a fault the emulation of this protocol does not play yet
    assert (outcome.error is None) == (scenario in ("stamp_order", "turns"))


def test_a_clean_scenario_waits_for_a_session_slower_than_the_error_scenarios_timeout():
    """A session that takes longer than the error scenarios' 0.5 s to be ready (a loaded machine: this suite's
    tests in parallel did it) is not a driver that cannot start one: stamp_order waits up to CLEAN_TIMEOUT_S.
    Before, every scenario ran with --timeout 0.5 s and this ended in session_timeout."""
    from dataclasses import replace

    from bootbench.server.latency import parse_delay
    from bootbench.testing import kit
    from bootbench.testing.reference import InProcessReferenceServer

    slow = replace(testing.reference_config("stamp_order"), setup_delay=parse_delay("fixed:900"))
    with InProcessReferenceServer(slow) as server:
        outcome = kit.drive(providers.get("openai"), server.url, "stamp_order")
    kit.judge(outcome)
    first = outcome.timelines[0]
    assert (first.session_ready - first.start_sent) / 1e6 >= 900
    assert kit.timeout_for("stamp_order") == kit.CLEAN_TIMEOUT_S >= 5 > 0.5 == kit.timeout_for("session_timeout")


def test_a_provider_without_a_script_is_named_with_where_to_add_one():
    with pytest.raises(LookupError, match=r"no conformance script for the provider 'skype': add its service's side "
                                          r"to bootbench/testing/scripts.py \(SCRIPTS\)"):
        testing.script_for("skype")


def test_a_protocol_the_reference_server_does_not_emulate_is_not_emulated():
    class Elsewhere(OpenAIRealtimeDriver):
        name = "elsewhere"

    with pytest.raises(testing.NotEmulated, match="does not emulate the protocol 'elsewhere'"):
        testing.check_against_reference_server(Elsewhere, "stamp_order")


# ---- the kit can fail: drivers broken on purpose


class ReadyBeforeStart(OpenAIRealtimeDriver):
    """Stamps the start after the session is ready (the stamp taken at the wrong place)."""

    def start(self, timeline, deadline_ns):
        super().start(timeline, deadline_ns)
        timeline.start_sent = time.perf_counter_ns()


class AuthAsServerError(OpenAIRealtimeDriver):
    """Reports a refused key as the service's error."""

    def connect(self, timeline):
        try:
            super().connect(timeline)
        except CycleError as exc:
            raise CycleError(ErrorKind.SERVER_ERROR, exc.message) from None


class DeafToErrors(OpenAIRealtimeDriver):
    """Ignores the service's error events: the cycle waits for audio that never comes."""

    def on_message(self, message, received_ns):
        if message.get("type") != "error":
            super().on_message(message, received_ns)


class NoWordsOfTheService(OpenAIRealtimeDriver):
    """Loses the service's message."""

    def fail(self, session, kind, message):
        super().fail(session, kind, "something went wrong")


@pytest.mark.parametrize("driver, scenario, complaint", [
    (ReadyBeforeStart, "stamp_order", r"start_sent \(\d+\) after session_ready \(\d+\), by [\d.]+ ms"),
    (AuthAsServerError, "refused_auth", "expected auth_failed, got server_error: HTTP 401: Incorrect API key provided "
                                        r"\(in connect\)"),
    (DeafToErrors, "server_error", r"expected server_error, got audio_timeout: no audio within 0.5 s"),
    (NoWordsOfTheService, "server_error", "lacks the service's words 'The server had an error while processing your "
                                          "request'"),
])
def test_the_kit_catches_a_driver_that_breaks_the_contract(driver, scenario, complaint):
    with pytest.raises(testing.ConformanceError, match=complaint) as caught:
        testing.check(driver, testing.script_for("openai"), scenario)
    assert str(caught.value).startswith(f"openai (manual turns), scenario {scenario}: ")
    assert "; the service did: upgrade, " in str(caught.value)
