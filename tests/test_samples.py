"""The record of one iteration: the timeline's phase arithmetic, the phase table, the sample's round trip."""

from dataclasses import asdict, fields

from bootbench.samples import (CONTAINER_FIELDS, MULTI_TURN_FIELDS, PHASE_BY_NAME, PHASE_TABLE, PHASES, SAMPLE_FIELDS,
                               ErrorKind, Sample, Timeline, Turn)


def test_timeline_phases_follow_the_design_table():
    ms = 1_000_000
    tl = Timeline(cycle_start=0, connect_start=1 * ms, connected=11 * ms, start_sent=12 * ms,
                  session_ready=62 * ms, input_sent=63 * ms, first_audio=212 * ms, first_audible=242 * ms,
                  greeting=70 * ms, stop_sent=315 * ms, stop_acked=318 * ms)
    assert tl.phases() == {"connect_ms": 10.0, "session_start_ms": 50.0, "first_response_ms": 150.0,
                           "input_to_audio_ms": 149.0, "cold_start_ms": 212.0, "first_audible_ms": 180.0,
                           "input_to_audible_ms": 179.0, "leading_silence_ms": 30.0, "stop_ms": 3.0,
                           "call_create_ms": None, "join_ms": None,   # steps of a session started in one request
                           "turn_end_ms": None, "transcript_ms": None, "response_start_ms": None,
                           "first_text_ms": None}   # service stages: the protocol sent none
    assert tl.greeting_ms() == 8.0
    two_steps = Timeline(start_sent=12 * ms, call_created=15 * ms, join_sent=16 * ms, session_ready=62 * ms).phases()
    assert (two_steps["session_start_ms"], two_steps["call_create_ms"], two_steps["join_ms"]) == (50.0, 3.0, 46.0)
    assert [p.name for p in PHASE_TABLE if p.part_of] == ["call_create_ms", "join_ms"]
    assert {p.part_of for p in PHASE_TABLE if p.part_of} == {"session_start_ms"}
    assert Timeline(start_sent=0).phases()["session_start_ms"] is None
    inaudible = Timeline(session_ready=0, input_sent=1, first_audio=5).phases()
    assert inaudible["first_response_ms"] is not None and inaudible["first_audible_ms"] is None
    assert Timeline().greeting_ms() is None


def test_service_stages_count_from_the_last_input_and_may_come_before_it():
    ms = 1_000_000
    tl = Timeline(session_ready=0, input_sent=100 * ms, first_audio=300 * ms)
    tl.add_stages({"turn_end": 160 * ms, "first_text": 250 * ms})
    phases = tl.phases()
    assert (phases["turn_end_ms"], phases["first_text_ms"]) == (60.0, 150.0)
    assert phases["transcript_ms"] is None and phases["response_start_ms"] is None
    early = Timeline(session_ready=0, input_sent=100 * ms, first_audio=90 * ms)   # answered while still streaming
    early.add_stages({"turn_end": 80 * ms})
    assert early.phases()["turn_end_ms"] == -20.0 and early.phases()["input_to_audio_ms"] is None
    try:
        tl.add_stages({"first_audio": 1})
    except ValueError as exc:
        assert "not a stage" in str(exc)
    else:
        raise AssertionError("a stamp that is not a stage was taken")
    turn = Turn.of(2, tl)
    assert turn.stages_ms == {"turn_end_ms": 60.0, "first_text_ms": 150.0}
    assert Turn.of(2, Timeline(input_sent=0, first_audio=ms)).stages_ms is None


def test_a_session_keeps_the_first_stage_of_each_kind_per_turn_and_none_between_turns():
    from bootbench.providers.base import SessionState

    session = SessionState(1)
    session.stage("first_text", 10)
    session.stage("first_text", 20)   # a later delta of the same kind
    session.answer_audio(b"", 30)
    assert session.end_reply(40)
    session.stage("response_start", 45)   # after the reply ended, before the next input: no turn's
    session.begin_turn()
    session.stage("response_start", 50)
    assert session.turn_stages == [{"first_text": 10}, {"response_start": 50}]


def test_every_phase_of_the_table_is_a_sample_field_between_two_timeline_stamps():
    stamps = {f.name for f in fields(Timeline)}
    for phase in PHASE_TABLE:
        assert phase.name in SAMPLE_FIELDS and PHASE_BY_NAME[phase.name] is phase
        assert {phase.since, phase.until} <= stamps, phase
        assert phase.label and phase.unit == "ms"
    assert PHASES == tuple(p.name for p in PHASE_TABLE) and "first_response_ms" in PHASES


def test_error_kinds_read_as_their_value():
    assert f"{ErrorKind.AUTH_FAILED}" == "auth_failed" == ErrorKind("auth_failed")


def test_sample_round_trips_through_a_dict():
    s = Sample(7, "w1", 2, "t", True, first_response_ms=12.5, anomalies={"x": 1})
    assert Sample.from_dict({**s.to_dict(), "unknown_future_field": 1}) == s


def test_to_dict_is_asdict_with_its_own_copies():
    s = Sample(7, "w1", 2, "t", False, error_kind="disconnected", error="gone", connect_ms=1.5,
               connected_this_cycle=True, anomalies={"stray_audio": 2})
    d = s.to_dict()
    single_turn = {k: v for k, v in asdict(s).items() if k not in MULTI_TURN_FIELDS}  # --turns 1: today's keys
    assert d == single_turn and list(d) == list(single_turn)
    d["anomalies"]["stray_audio"] = 9
    assert s.anomalies == {"stray_audio": 2}
    deep = Sample(1, "local", 1, "t", True, anomalies={"nested": [1, {"a": 2}]}, turns=[Turn(1, input_to_audio_ms=5.0)])
    assert deep.to_dict() == asdict(deep)


def test_to_dict_copies_every_field_that_can_hold_a_container():
    """to_dict copies the CONTAINER_FIELDS and hands every other field over as it is: those must hold no container."""
    holders = {f.name for f in fields(Sample) if any(word in str(f.type) for word in ("dict", "list", "set", "tuple",
                                                                                     "Turn", "Any"))}
    assert holders == set(CONTAINER_FIELDS)
    s = Sample(3, "local", 1, "t", True, first_response_ms=5.0, service_latency_ms={"total_ms": 9.0})
    s.users_active, s.level = 40, 20  # the master stamps these after the sample was built
    d = s.to_dict()
    assert d == {k: v for k, v in asdict(s).items() if k not in MULTI_TURN_FIELDS} and d["users_active"] == 40
    d["service_latency_ms"]["total_ms"] = 1.0
    assert s.service_latency_ms == {"total_ms": 9.0}
