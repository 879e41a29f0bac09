"""The reference server's pure parts: delay specs, the seeded latency model, message checks."""

from __future__ import annotations

import base64
import statistics

import pytest

from bootbench.server.protocols.aivoco.checks import check_audio_data, check_start_call
from bootbench.server.latency import LatencyModel, parse_delay
from bootbench.server.truth import SessionTruth
from bootbench.wire import SILENCE_THRESHOLD


@pytest.mark.parametrize("spec, kind, params", [
    ("150", "fixed", (150.0,)),
    ("uniform:100:200", "uniform", (100.0, 200.0)),
    ("normal:150:20", "normal", (150.0, 20.0)),
    ("lognormal:150:0.25", "lognormal", (150.0, 0.25)),
])
def test_delay_specs_parse_into_kind_and_parameters(spec: str, kind: str, params: tuple[float, ...]) -> None:
    delay = parse_delay(spec)
    assert (delay.kind, delay.params) == (kind, params)


@pytest.mark.parametrize("spec, message", [
    ("bogus:1", "unknown distribution 'bogus'"),
    ("uniform:1", "uniform needs the form uniform:LOW:HIGH"),
    ("uniform:9:1", "LOW must not exceed HIGH"),
    ("normal:abc:1", "'abc' is not a number"),
    ("-5", "must not be negative"),
    ("lognormal:0:0.2", "MEDIAN must be positive"),
    ("nan", "must be finite"),
])
def test_bad_delay_specs_raise_one_sentence_value_errors(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        parse_delay(spec)
    assert "\n" not in str(info.value)


def test_latency_model_is_reproducible_per_seed_and_adds_cold_penalty_to_first_session_only() -> None:
    def draws(seed: int) -> list[tuple[float, float, float]]:
        model = LatencyModel(parse_delay("lognormal:50:0.2"), parse_delay("normal:150:20"), 200.0, seed)
        return [(d.setup_delay_ms, d.first_audio_delay_ms, d.cold_penalty_ms) for d in
                (model.draw() for _ in range(200))]

    first, again, other = draws(0), draws(0), draws(1)
    assert first == again != other
    assert [c for _, _, c in first] == [200.0] + [0.0] * 199
    assert statistics.median(s for s, _, _ in first) == pytest.approx(50, rel=0.1)
    assert statistics.mean(f for _, f, _ in first) == pytest.approx(150, rel=0.05)


def test_normal_delays_are_clamped_at_zero() -> None:
    model = LatencyModel(parse_delay("normal:1:50"), parse_delay("0"), 0.0, 3)
    assert min(model.draw().setup_delay_ms for _ in range(500)) == 0.0


def test_correct_start_call_has_no_violations_and_wrong_types_are_named() -> None:
    good = {"auth_key": "k", "system_message": "", "voice_choice": "female", "custom_functions": []}
    assert check_start_call((good,)) == []
    assert check_start_call(("k",)) == ["start_call: payload must be an object, got string"]
    assert check_start_call(({**good, "voice_choice": 1, "extra": True},)) == [
        "start_call: unexpected key 'extra'", "start_call: 'voice_choice' must be a string, got number"]


def _payload(samples: list[int], **override: object) -> dict[str, object]:
    raw = b"".join(s.to_bytes(2, "little", signed=True) for s in samples)
    peak = max(abs(s) for s in samples) / 32768
    return {"audio_data": base64.b64encode(raw).decode(), "has_audio": peak > SILENCE_THRESHOLD, "max_amplitude": peak,
            **override}


def test_audio_data_checks_accept_correct_chunks_and_silence() -> None:
    assert check_audio_data((_payload([0, 1000, -16384, 5]),)).problems == []
    assert check_audio_data((_payload([0, 3, -2]),)).problems == []
    assert check_audio_data((_payload([0, 3, -2], max_amplitude=0.009),)).problems == []


@pytest.mark.parametrize("override, problem", [
    ({"audio_data": "not base64!"}, "not valid base64"),
    ({"audio_data": base64.b64encode(b"\x01\x02\x03").decode()}, "odd byte length 3"),
    ({"audio_data": base64.b64encode(b"RIFF\x00\x00").decode()}, "RIFF header"),
    ({"audio_data": ""}, "'audio_data' is empty"),
    ({"has_audio": 1}, "'has_audio' must be a boolean, got number"),
    ({"has_audio": False}, "'has_audio' is false but the chunk peak is 0.5000"),
    ({"max_amplitude": 1.5}, "outside 0..1"),
    ({"max_amplitude": 0.48}, "does not match the chunk peak 0.5000"),
    ({"max_amplitude": True}, "'max_amplitude' must be a number, got boolean"),
])
def test_each_audio_data_defect_is_one_violation(override: dict[str, object], problem: str) -> None:
    problems = check_audio_data((_payload([0, 16384, -100], **override),)).problems
    assert len(problems) == 1 and problem in problems[0]


def test_restamp_moves_a_stamp_to_its_write_only_where_it_is_still_the_one_taken_before_the_send():
    record = SessionTruth(session=1, protocol="aivoco", sid="s")
    record.t_ns["ready_sent"] = 100
    record.restamp("ready_sent", 100, 130)
    assert record.t_ns["ready_sent"] == 130
    assert record.turns == []                       # a session-level stamp makes no turn
    record.note_first_audio(500)                    # turn 1 and the session
    record.restamp("first_audio_sent", 500, 520)
    assert record.t_ns["first_audio_sent"] == 520 and record.turns[0].t_ns["first_audio_sent"] == 520
    record.restamp("first_audio_sent", 500, 999)    # already moved: the stamp taken then is no longer there
    assert record.t_ns["first_audio_sent"] == 520
    record.restamp("first_audio_sent", 520, None)   # queued, not written inline: the stamp stays
    assert record.t_ns["first_audio_sent"] == 520
