"""Options are one table (bootbench/options.py) and resolve to one Settings object: defaults, derived forms, checks."""

from __future__ import annotations

import math
from dataclasses import fields

import pytest
from locust.argument_parser import get_empty_argument_parser, setup_parser_arguments

from bootbench import options
from bootbench.providers import DriverConfig
from support.provider_table import BUILTINS, RUN_ARGS, driver
from support.refusals import locust_parser

RUN_KEYS = {"provider", "target", "embedded_server", "timeout_s", "wait_ms", "pace", "trailing_silence_ms",
            "connect_per_call", "system_message", "voice", "model", "turn", "audible_dbfs", "headline", "sweep",
            "sweep_tolerance", "turns", "reply_gap_ms", "provider_options", "record_replies", "trace", "clock"}
"""The configuration keys of metrics.json's ``run`` block (the master adds the others)."""


def parsed(*args: str):
    return locust_parser().parse_args(list(args))


def test_every_option_of_bootbench_is_a_settings_field_and_back():
    locust_only = get_empty_argument_parser(default_config_files=[])
    setup_parser_arguments(locust_only)
    ours = set(vars(parsed())) - set(vars(locust_only.parse_args([])))
    assert ours == set(options.OPTION_FIELDS)


def test_the_driver_config_takes_every_field_from_the_settings():
    settings = options.resolve(parsed("--timeout", "3.5", "--voice", "alloy", "--pace", "realtime",
                                      "--provider", "openai"), "ws://127.0.0.1:9")
    config = settings.driver_config("k-123")
    assert config.url == "ws://127.0.0.1:9" and config.api_key == "k-123"
    for f in fields(DriverConfig):
        if f.name not in ("url", "api_key"):
            assert getattr(config, f.name) == getattr(settings, f.name), f.name
    assert (config.timeout, config.voice, config.pace, config.model) == (3.5, "alloy", "realtime", "gpt-realtime")
    assert settings.driver_config(None).api_key == options.LOOPBACK_KEY


def test_the_run_block_records_wait_ms_and_no_secret_of_the_url():
    settings = options.resolve(parsed("--wait-ms", "250", "--timeout", "4"), "wss://example.com:8443/x?key=SECRET")
    block = settings.run_block()
    assert block["wait_ms"] == 250.0 and block["timeout_s"] == 4.0 and "delay_ms" not in block
    assert block["target"] == "wss://example.com:8443/x" and block["embedded_server"] is False
    assert block["voice"] == "female" and block["model"] is None and block["turn"] == "vad"  # the voice sent
    assert set(block) == RUN_KEYS
    assert {o.name for o in options.OPTIONS if not o.recorded} == {
        "iterations", "audio", "results_dir", "ca_bundle", "checks", "master_silence_s",
        "provider_options",  # recorded by run_block itself: the provider says which values are secret
        "metrics_port", "metrics_linger", "pushgateway", "pushgateway_job"}
    assert options.resolve(parsed("--sweep", "1,2,4"), "").run_block()["sweep"] == [1, 2, 4] and block["sweep"] is None


def test_defaults_are_defined_once_in_options():
    settings = options.resolve(parsed(), "")
    assert (settings.iterations, settings.timeout, settings.wait_ms, settings.pace, settings.results_dir) == \
        (100, 10.0, 100.0, "burst", "results")
    assert settings.embedded_server and settings.target == ""
    embedded = settings.retarget("http://127.0.0.1:5000", embedded=True)
    assert embedded.target == "http://127.0.0.1:5000" and embedded.embedded_server


def test_resolving_is_pure_and_no_settings_are_kept_between_calls():
    opts = parsed("-i", "7")
    first = options.resolve(opts, "")
    assert options.resolve(opts, "") == first and first.iterations == 7
    assert options.resolve(opts, "ws://127.0.0.1:9") != first
    opts.iterations = 8
    assert options.resolve(opts, "").iterations == 8 and first.iterations == 7
    assert not hasattr(options, "settings_for") and not hasattr(options, "_resolved")  # no module-level cache


def test_every_option_is_a_locust_variable_named_after_its_flag():
    parser = locust_parser()
    variables = {a.dest: a.env_var for a in parser._actions if a.dest in options.OPTION_FIELDS}
    assert variables == {o.name: o.env_var for o in options.OPTIONS}
    assert set(variables.values()) == {
        "LOCUST_ITERATIONS", "LOCUST_PROVIDER", "LOCUST_TIMEOUT", "LOCUST_RESULTS_DIR", "LOCUST_AUDIO",
        "LOCUST_AUDIBLE_DBFS", "LOCUST_RECORD_REPLIES", "LOCUST_HEADLINE", "LOCUST_CONNECT_PER_CALL", "LOCUST_PACE",
        "LOCUST_TRAILING_SILENCE_MS",
        "LOCUST_SYSTEM_MESSAGE", "LOCUST_VOICE", "LOCUST_MODEL", "LOCUST_TURN", "LOCUST_CA_BUNDLE", "LOCUST_CLOCK", "LOCUST_WAIT_MS",
        "LOCUST_MASTER_SILENCE_S", "LOCUST_CHECK", "LOCUST_SWEEP", "LOCUST_SWEEP_TOLERANCE", "LOCUST_TURNS",
        "LOCUST_REPLY_GAP_MS", "LOCUST_TRACE", "LOCUST_PROVIDER_OPTION", "LOCUST_METRICS_PORT", "LOCUST_METRICS_LINGER",
        "LOCUST_PUSHGATEWAY", "LOCUST_PUSHGATEWAY_JOB"}


def test_adding_an_option_is_one_row_of_the_table(monkeypatch):
    """A new row is parsed (flag and variable), checked (its range), read as Settings, recorded and offered."""
    from locust import events
    from locust.argument_parser import ui_extra_args_dict

    from bootbench.views.cli import options_help

    row = options.Option(("--loudness-db",), float, 3.0, range=options.Range(0.0, 10.0), recorded_as="loudness",
                         help="How loud. Default 3.")
    monkeypatch.setattr(options, "OPTIONS", (*options.OPTIONS, row))
    assert parsed().loudness_db == 3.0 and parsed("--loudness-db", "4").loudness_db == 4.0
    monkeypatch.setenv("LOCUST_LOUDNESS_DB", "5")
    settings = options.resolve(parsed(), "")
    assert settings.loudness_db == 5.0 and settings.run_block()["loudness"] == 5.0
    with pytest.raises(options.ConfigError) as raised:
        options.resolve(parsed("--loudness-db", "11"), "")
    assert str(raised.value) == "--loudness-db must be at most 10, not 11"
    assert options.resolve(options.with_form(parsed(), {"loudness_db": "7"}), "").loudness_db == 7.0
    monkeypatch.setattr(events.init_command_line_parser, "_handlers", [lambda parser, **_: options.add_arguments(parser)])
    assert ui_extra_args_dict([])["loudness_db"]["default_value"] == 5.0
    assert "--loudness-db LOUDNESS_DB" in options_help() and "How loud. Default 3." in options_help()


@pytest.mark.parametrize("args, sentence", [
    (("--timeout", "0"), "--timeout must be a positive number"),
    (("--turn", "vad", "--provider", "openai", "--trailing-silence-ms", "400"), "--turn vad needs --trailing-silence-ms"),
])
def test_bad_options_raise_one_sentence(args, sentence):
    with pytest.raises(options.ConfigError, match=sentence):
        options.resolve(parsed(*args), "")


@pytest.mark.parametrize("provider", BUILTINS)
def test_the_voice_recorded_is_the_voice_each_driver_sends(provider):
    voice = driver(provider).default_voice  # "" when the driver leaves the voice to the service
    needs = RUN_ARGS.get(provider, ())  # trailing silence, for a provider whose turns end by voice activity only
    settings = options.resolve(parsed("--provider", provider, *needs), "")
    assert settings.run_block()["voice"] == (voice or None) and settings.driver_config(None).voice == voice
    assert options.resolve(parsed("--provider", provider, *needs, "--voice", "echo"), "").run_block()["voice"] == "echo"


@pytest.mark.parametrize("provider", BUILTINS)
def test_trailing_silence_not_given_is_what_the_turn_mode_needs(provider):
    # a VAD-only agent (ElevenLabs, Ultravox) needed --trailing-silence-ms by hand: the default 0 was refused
    cls = driver(provider)
    for turn in cls.turn_modes:
        settings = options.resolve(parsed("--provider", provider, "--turn", turn), "")
        expected = cls.vad_trailing_silence_ms if turn == "vad" else 0.0
        assert settings.trailing_silence_ms == expected
        assert settings.run_block()["trailing_silence_ms"] == expected
        assert settings.driver_config(None).trailing_silence_ms == expected
    if "vad" in cls.turn_modes:
        assert cls.vad_trailing_silence_ms >= cls.vad_silence_ms
    given = options.resolve(parsed("--provider", provider, "--turn", cls.turn_modes[0], "--trailing-silence-ms",
                                   "700"), "")
    assert given.trailing_silence_ms == 700.0   # a value given is taken as it is
    in_form = options.resolve(options.with_form(parsed("--provider", provider), {"trailing_silence_ms": ""}), "")
    assert in_form.trailing_silence_ms == (cls.vad_trailing_silence_ms if cls.turn_modes[0] == "vad" else 0.0)


def test_the_readme_lists_every_providers_defaults_from_its_driver():
    from bootbench.views.reference import options_table

    table = options_table()
    for provider in BUILTINS:
        cls = driver(provider)
        row = next(line for line in table.splitlines() if line.startswith("| `--voice"))
        assert f"{provider}: {cls.default_voice or 'the service' + chr(39) + 's'}" in row
        row = next(line for line in table.splitlines() if line.startswith("| `--trailing-silence-ms"))
        assert provider + ": " in row


@pytest.mark.parametrize("flag", ["--timeout", "--wait-ms", "--trailing-silence-ms", "--master-silence-s"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e400"])
def test_every_numeric_option_must_be_finite(flag, value):
    with pytest.raises(options.ConfigError, match=f"^{flag} must be a finite number, not"):
        options.resolve(parsed(f"{flag}={value}"), "")


def test_every_number_option_has_a_range_in_its_row():
    numbers = [o for o in options.OPTIONS if o.kind in (int, float)]
    assert all(o.range is not None for o in numbers), [o.name for o in numbers if o.range is None]
    assert {o.name: (o.range.low, o.range.high) for o in numbers if o.range.high < math.inf} == {
        "timeout": (0, 3600), "audible_dbfs": (-120, 0), "trailing_silence_ms": (0, 60_000),
        "wait_ms": (0, 3_600_000), "master_silence_s": (0, 3600), "reply_gap_ms": (200, 60_000), "turns": (1, 50),
        "metrics_port": (0, 65535), "metrics_linger": (0, 3600)}


@pytest.mark.parametrize("args, sentence", [
    (("--timeout", "3601"), "--timeout must be at most 3600, not 3601"),
    (("--wait-ms", "-1"), "--wait-ms cannot be negative (-1)"),
    (("--wait-ms", "3600001"), "--wait-ms must be at most 3600000, not 3600001"),
    (("--trailing-silence-ms", "60001"), "--trailing-silence-ms must be at most 60000, not 60001"),
])
def test_numeric_options_must_be_in_range(args, sentence):
    with pytest.raises(options.ConfigError) as raised:
        options.resolve(parsed(*args), "")
    assert str(raised.value) == sentence


def test_bootbench_options_are_a_help_group_of_their_own_and_still_reach_the_web_ui(monkeypatch):
    from locust import events
    from locust.argument_parser import ui_extra_args_dict

    parser = locust_parser()
    (group,) = [g for g in parser._action_groups if g.title == options.HELP_GROUP]
    assert {a.dest for a in group._group_actions} == set(options.OPTION_FIELDS)
    monkeypatch.setenv("LOCUST_WAIT_MS", "250")  # env_var works in a group too
    assert parser.parse_args([]).wait_ms == 250.0
    monkeypatch.setattr(events.init_command_line_parser, "_handlers", [lambda parser, **_: options.add_arguments(parser)])
    shown = ui_extra_args_dict([])
    hidden = {a.dest for a in group._group_actions if not a.include_in_web_ui}
    assert hidden == {"checks", "sweep", "sweep_tolerance",  # for the command line and CI, as Locust's own would be
                      "metrics_port", "metrics_linger", "pushgateway", "pushgateway_job"}  # the process's, not a run's
    assert set(options.OPTION_FIELDS) - hidden <= set(shown) and hidden.isdisjoint(shown)
    assert shown["wait_ms"]["default_value"] == 250.0


def test_a_value_the_web_ui_sent_as_text_is_checked_like_the_command_line():
    opts = parsed()
    opts.wait_ms = "soon"
    with pytest.raises(options.ConfigError, match="--wait-ms must be a number, not 'soon'"):
        options.resolve(opts, "")
    opts.wait_ms = "nan"
    with pytest.raises(options.ConfigError, match="--wait-ms must be a finite number, not nan"):
        options.resolve(opts, "")
    opts.wait_ms = "250"
    assert options.resolve(opts, "").wait_ms == 250.0


def test_a_key_is_required_only_for_a_remote_target(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    for name in ("AIVOCO_API_KEY",):
        monkeypatch.delenv(name, raising=False)
    remote = options.resolve(parsed(), "wss://example.com")
    with pytest.raises(options.ConfigError, match="AIVOCO_API_KEY is not set"):
        remote.api_key(required=True)
    assert options.resolve(parsed(), "ws://127.0.0.1:9").api_key(required=True) is None
    monkeypatch.setenv("AIVOCO_API_KEY", "k-remote-1234")
    assert remote.api_key(required=True) == "k-remote-1234"


def test_checks_resolve_from_repeated_options_and_semicolons_and_bad_ones_are_config_errors():
    settings = options.resolve(parsed("--check", "first_response_ms:p95<=800", "--check",
                                      "success_rate>=95%; stop_ms:max<50"), "")
    assert [(c.phase, c.stat, c.op, c.threshold) for c in settings.checks] == [
        ("first_response_ms", "p95", "<=", 800.0), (None, "success_rate", ">=", 0.95), ("stop_ms", "max", "<", 50.0)]
    assert options.resolve(parsed(), "").checks == ()
    assert "checks" not in settings.run_block()
    with pytest.raises(options.ConfigError, match=r"^--check 'stop_ms:p42<5' names the unknown statistic 'p42'"):
        options.resolve(parsed("--check", "stop_ms:p42<5"), "")
