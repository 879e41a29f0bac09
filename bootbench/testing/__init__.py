"""bootbench.testing: the conformance kit a provider's author runs in their own tests.

    from bootbench import testing

    @pytest.mark.parametrize("scenario", testing.SCENARIOS)
    def test_my_driver_conforms(scenario):
        testing.check(MyDriver, MyScript(), scenario)            # against a scripted fake service

    @pytest.mark.parametrize("scenario", testing.SCENARIOS)
    def test_my_driver_against_the_reference_server(scenario):
        try:
            testing.check_against_reference_server(MyDriver, scenario)
        except testing.NotEmulated as why:
            pytest.skip(str(why))

A :class:`Script` is the service's side of the protocol, as little as the
kit needs (:mod:`.script`; the built-ins' in :mod:`.scripts`). Each scenario
drives one cycle of the driver and judges it (:mod:`.kit`): the stamps in
order, or the error kind a refused key, a closed socket, the service's error
or a timeout must give, within the timeout. A failure is a
:class:`ConformanceError` (an AssertionError, so any test runner reports it)
saying what was wrong and what the service did. Nothing here imports pytest.
"""

from __future__ import annotations

import time
from typing import Any

from bootbench.providers.base import Driver
from bootbench.server import protocols as server_protocols
from bootbench.server.config import ServerConfig
from bootbench.server.faults import parse_fault
from bootbench.server.latency import parse_delay

from .fake_service import SCENARIOS, FakeService
from .kit import API_KEY, TIMEOUT_S, ConformanceError, Outcome, drive, judge
from .reference import InProcessReferenceServer
from .script import Close, Frame, HttpRefusal, HttpReply, HttpRequest, Pause, Script, Send
from .scripts import SCRIPTS, script_for

__all__ = ["SCENARIOS", "SCRIPTS", "Close", "ConformanceError", "FakeService", "Frame", "HttpRefusal", "HttpReply",
           "HttpRequest", "InProcessReferenceServer", "NotEmulated", "Outcome", "Pause", "Script", "Send", "check",
           "check_against_reference_server", "reference_config", "script_for"]

FAULTS = {"server_error": "error", "closed_socket": "drop:when=after_input"}
"""The reference server fault each error scenario is played with."""
RECORD_WAIT_S = 3.0


class NotEmulated(Exception):
    """The reference server does not emulate the protocol, or does not play the scenario's fault for it."""


def check(driver: type[Driver], script: Script, scenario: str, *, turn: str | None = None,
          options: tuple[tuple[str, str], ...] = ()) -> Outcome:
    """Drive ``driver`` through ``scenario`` against a fake service playing ``script``; the outcome, or
    :class:`ConformanceError`.

    ``turn`` is the ``--turn`` mode (default: the driver's first), ``options`` its ``--provider-option`` pairs.
    """
    with FakeService(script, scenario) as service:
        outcome = drive(driver, service.url, scenario, turn, options)
        outcome.service_events = list(service.events)
    outcome.expected_words = {"refused_auth": script.auth_words, "server_error": script.error_words}.get(scenario, "")
    judge(outcome)
    return outcome


def reference_config(scenario: str) -> ServerConfig:
    """The reference server's settings for ``scenario``: fixed small delays, and what the scenario needs."""
    fixed = {"setup_delay": parse_delay("20"), "first_audio_delay": parse_delay("40"),
             "warm_first_audio_delay": parse_delay("30"), "cold_penalty_ms": 0.0, "reply_ms": 200}
    never = parse_delay(str(int(TIMEOUT_S * 5000)))  # five timeouts: the driver gives up long before
    extra: dict[str, Any] = {
        "refused_auth": {"api_key": API_KEY + "-but-another"},
        "session_timeout": {"setup_delay": never},
        "audio_timeout": {"first_audio_delay": never},
    }.get(scenario, {})
    if scenario in FAULTS:
        extra = {"faults": (parse_fault(FAULTS[scenario]),)}
    return ServerConfig(**{**fixed, **extra})


def check_against_reference_server(driver: type[Driver], scenario: str, *, turn: str | None = None,
                                   options: tuple[tuple[str, str], ...] = (), protocol: str | None = None) -> Outcome:
    """Drive ``driver`` through ``scenario`` against the reference server's emulation of its protocol.

    ``protocol`` is the server protocol's name (default: the driver's ``emulated_by()``); the server's records
    name the provider. Besides the kit's judgement, a clean cycle must leave a session the server recorded as
    ``ok`` with no protocol violation. :class:`NotEmulated` when the server has no such protocol, or does not play
    the scenario's fault for it.
    """
    if (protocol or driver.emulated_by()) not in server_protocols.names():
        raise NotEmulated(f"the reference server does not emulate the protocol {protocol or driver.emulated_by()!r}")
    protocol = driver.name
    with InProcessReferenceServer(reference_config(scenario)) as server:
        outcome = drive(driver, server.url, scenario, turn, options)
        records = _records(server)
    sessions = [record for record in records if record.get("session") is not None]
    if scenario in FAULTS and not any(s.get("fault") for s in sessions):
        raise NotEmulated(f"the reference server does not play the fault {FAULTS[scenario]!r} for {protocol}")
    judge(outcome)
    if outcome.error is None:
        problems = [f"the server recorded a {s['protocol']} session as {s['outcome']!r}" for s in sessions
                    if s["outcome"] != "ok"] or ([] if sessions else ["the server recorded no session"])
        violations = [violation for record in records for violation in record.get("violations", [])]
        problems += [f"protocol violations: {'; '.join(violations)}"] if violations else []
        problems += [f"a session of the protocol {s['protocol']!r}, not {protocol!r}" for s in sessions
                     if s["protocol"] != protocol]
        if problems:
            raise ConformanceError(f"{driver.name} ({outcome.turn} turns), scenario {scenario} against the reference "
                                   f"server: {'; '.join(problems)}")
    return outcome


def _records(server: InProcessReferenceServer) -> list[dict[str, Any]]:
    """The server's records (sessions and connections) once every connection has ended (bounded)."""
    deadline = time.monotonic() + RECORD_WAIT_S
    while server.stats()["connections"] and time.monotonic() < deadline:
        time.sleep(0.02)
    return server.records()
