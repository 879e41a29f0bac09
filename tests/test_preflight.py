"""The pre-flight check (bootbench/preflight.py) on input it accepts: the host a run targets, warnings, the web UI's form."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile

from bootbench import options, preflight, providers
from bootbench.errors import UserError


def test_without_a_host_the_run_targets_the_embedded_server_unless_the_providers_key_is_set(refusals):
    checked = refusals.check("--headless", "-u", "1")
    assert checked.host == "" and checked.settings.embedded_server and checked.warnings == ()
    keyed = refusals.check("--headless", "-u", "1", "--provider", "openai", env={"OPENAI_API_KEY": "sk-test-1234"})
    public = providers.get("openai").public_url
    assert keyed.host == keyed.settings.target == public and not keyed.settings.embedded_server
    given = refusals.check("--headless", "-u", "1", "-H", "ws://127.0.0.1:9", env={"AIVOCO_API_KEY": "k-1234"})
    assert given.host == given.settings.target == "ws://127.0.0.1:9"


def test_a_silent_clip_is_a_warning_once_not_a_refusal(refusals, tmp_path):
    silent = tmp_path / "silent.wav"
    soundfile.write(silent, np.zeros(8000), 16_000, subtype="PCM_16")
    checked = refusals.check("--headless", "-u", "1", "--audio", str(silent), "--audio", str(silent))
    (warning,) = checked.warnings
    assert warning.startswith(f"audio file {silent} is silent")


def test_the_receive_clock_is_recorded_and_falls_back_to_the_process_once_with_a_warning(refusals, monkeypatch):
    """--clock kernel (the default) where the kernel gives arrival stamps; process when forced (no warning), and when
    the kernel gives none (one warning, run.clock process); any other word is refused."""
    from bootbench.providers import kernel_clock

    if kernel_clock.available() is None:
        checked = refusals.check("--headless", "-u", "1")
        assert checked.settings.clock == "kernel" and checked.settings.run_block()["clock"] == "kernel"
        assert checked.settings.driver_config(None).clock == "kernel" and checked.warnings == ()
    forced = refusals.check("--headless", "-u", "1", "--clock", "process")
    assert forced.settings.run_block()["clock"] == "process" and forced.warnings == ()
    monkeypatch.setattr(kernel_clock, "available", lambda: "SO_TIMESTAMPNS refused (Operation not permitted)")
    fallback = refusals.check("--headless", "-u", "1")
    assert fallback.settings.run_block()["clock"] == "process"
    assert fallback.warnings == ("kernel arrival stamps are not available here (SO_TIMESTAMPNS refused (Operation not "
                                 "permitted)): the receive stamps are the process's own (run.clock is process)",)
    assert kernel_clock.socket_class("kernel") is kernel_clock.ProcessWebSocket


def test_the_web_ui_form_is_checked_like_the_command_line(refusals, tmp_path):
    parsed = refusals.options("--headless", "-u", "1")
    assert preflight.check_web_run(options.with_form(parsed, {"wait_ms": "250"}), "").wait_ms == 250.0
    for form, host, sentence in [
        ({"timeout": "inf"}, "", "--timeout must be a finite number, not inf"),
        ({}, "example.com", "host 'example.com' is not a URL like wss://example.com or http://127.0.0.1:8080"),
        ({}, "wss://example.com/x?key=SECRET", "AIVOCO_API_KEY is not set (in the environment or ./.env); "
                                               "it is needed for wss://example.com/x"),
        ({"audio": "missing.wav"}, "", "audio file missing.wav does not exist"),
        ({"pace": "realtime", "timeout": "1"}, "", "at --pace realtime the input takes 1.0 s to send"),
    ]:
        with pytest.raises(UserError) as raised:
            preflight.check_web_run(options.with_form(parsed, form), host)
        assert str(raised.value).startswith(sentence)
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("url, sentence", [
    ("http://[::1", "host 'http://[::1' is not a URL like wss://example.com"),
    ("ws://127.0.0.1:99999/x?key=SECRET", "host 'ws://127.0.0.1:99999/x?***' has an invalid port"),
])
def test_a_host_that_is_not_a_url_is_one_sentence_that_hides_its_query(url, sentence):
    with pytest.raises(options.ConfigError) as raised:
        preflight.check_url(url)
    assert str(raised.value).startswith(sentence)
