"""ToyVoice's driver against bootbench's conformance kit: a scripted fake service, and the reference server.

Run with the package installed (pip install -e . in a venv that has bootbench): the reference server finds the
emulation through its entry point, and bootbench finds the driver through its own.
"""

from __future__ import annotations

import base64

import pytest

from bootbench import providers, testing
from bootbench.testing import Frame, HttpRefusal, Script
from toyvoice.driver import ToyVoiceDriver


class ToyVoiceScript(Script):
    """The service's side of ToyVoice, as much as the kit needs (toyvoice/wire.py has the protocol)."""

    auth_words = "unknown key"
    error_words = "the service is busy"

    def starts_session(self, frame: Frame) -> bool:
        return (frame.json() or {}).get("type") == "hello"

    def ready(self, frame: Frame) -> list:
        return [{"type": "ready"}]

    def answer(self, pcm: bytes) -> list:
        self.turn = getattr(self, "turn", 0) + 1
        return [{"type": "audio", "turn": self.turn, "pcm16": base64.b64encode(pcm).decode()},
                {"type": "reply_done", "turn": self.turn}]

    def error(self) -> list:
        return [{"type": "error", "message": "the service is busy (overloaded)"}]

    def refuse_auth(self) -> HttpRefusal:
        return HttpRefusal(401, {"error": "unknown key"})


def test_the_package_registers_its_driver_under_its_name():
    assert providers.get("toyvoice") is ToyVoiceDriver


@pytest.mark.parametrize("scenario", testing.SCENARIOS)
def test_the_driver_conforms_against_a_scripted_service(scenario):
    testing.check(ToyVoiceDriver, ToyVoiceScript(), scenario)


@pytest.mark.parametrize("scenario", testing.SCENARIOS)
def test_the_driver_conforms_against_the_reference_servers_emulation(scenario):
    try:
        testing.check_against_reference_server(ToyVoiceDriver, scenario)
    except testing.NotEmulated as why:
        pytest.skip(str(why))


def test_a_room_option_is_checked():
    assert ToyVoiceDriver.option_values((("room", "team-7"),)) == {"room": "team-7"}
    with pytest.raises(ValueError, match="room='Team 7': a room is lower-case letters, digits and dashes"):
        ToyVoiceDriver.option_values((("room", "Team 7"),))
