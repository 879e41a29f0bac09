"""A clip too long for one message at --pace burst is refused before the run (issue 20 item 18).

A 30-minute clip at burst pace was one 77 MB message, over the server's 16 MiB limit: every iteration
failed as ``disconnected``. Pre-flight now compares the burst message with the provider's limit.
"""

from __future__ import annotations

import base64
import sys
import tracemalloc

import numpy as np
import pytest
import soundfile

from bootbench import preflight, providers
from bootbench.audio import Stimulus
import bootbench.server.protocols.aivoco.protocol as aivoco_server
from bootbench.server import ws_protocol
from bootbench.stimuli import Clip, ClipSet, load_clips

OPENAI = providers.get("openai")


@pytest.fixture(scope="module")
def five_minutes(tmp_path_factory):
    """A 5-minute 8 kHz tone: at OpenAI's 24 kHz, 14.4 MB of PCM16 and 19.2 MB of base64, over 15 MiB."""
    path = tmp_path_factory.mktemp("long") / "five_minutes.wav"
    seconds, rate = 300, 8_000
    soundfile.write(path, 0.3 * np.sin(2 * np.pi * 440 * np.arange(seconds * rate) / rate), rate, subtype="PCM_16")
    return path


def test_every_provider_states_its_message_limit_and_where_it_comes_from():
    assert OPENAI.max_message_bytes == 15 * 1024 * 1024  # OpenAI: "up to a maximum of 15 MiB" per append event
    assert "documented" in OPENAI.max_message_source
    # no documented limit: the reference server's own, which is what the emulation enforces
    assert providers.get("gemini").max_message_bytes == ws_protocol.MAX_MESSAGE_BYTES
    assert providers.get("aivoco").max_message_bytes == aivoco_server.MAX_MESSAGE_BYTES
    for name in ("gemini", "aivoco"):
        assert "reference server" in providers.get(name).max_message_source


def test_the_computed_burst_message_is_the_size_the_driver_sends():
    clips = load_clips(["speech", "sine"])
    for rate, silence in [(24_000, 0.0), (24_000, 700.0), (16_000, 500.0)]:
        sent = max(len(clip.chunks(rate, silence, None)[0].base64) for clip in clips)
        assert preflight.burst_message_bytes(clips, rate, silence) == sent + preflight.ENVELOPE_BYTES


def test_a_burst_message_over_the_providers_limit_is_refused_naming_the_limit(refusals, tmp_path, five_minutes):
    sentence = refusals.sentence("--headless", "-u", "1", "--provider", "openai", "--audio", str(five_minutes))
    assert sentence.startswith("at --pace burst the longest clip goes to openai in one 18.3 MiB message, "
                               "over the 15.0 MiB a message may carry (OpenAI's documented limit")
    assert sentence.endswith("use --pace realtime (64 ms chunks) or a shorter clip")
    assert not (tmp_path / "results").exists()
    # the same clip streamed in 64 ms chunks is accepted (with a timeout longer than the clip)
    checked = refusals.check("--headless", "-u", "1", "--provider", "openai", "--audio", str(five_minutes),
                             "--pace", "realtime", "--timeout", "400")
    assert checked.settings.pace == "realtime"


def test_the_limit_is_the_providers_own_and_counts_trailing_silence():
    # 4 min 20 s at 16 kHz: 8.3 MB of PCM16, 11.1 MB of base64 (10.6 MiB): under every limit
    clips = ClipSet((Clip("long", "test", Stimulus(np.zeros(260 * 16_000, dtype=np.int16), 16_000, "zeros")),))
    gemini, aivoco = providers.get("gemini"), providers.get("aivoco")
    assert preflight.burst_message_bytes(clips, gemini.input_rate, 0) < gemini.max_message_bytes
    # at OpenAI's 24 kHz the same clip is 15.9 MiB: over OpenAI's 15 MiB
    assert preflight.burst_message_bytes(clips, OPENAI.input_rate, 0) > OPENAI.max_message_bytes
    # 95 s of trailing silence push it over the reference server's 16 MiB at 24 kHz
    assert preflight.burst_message_bytes(clips, 24_000, 95_000) > aivoco.max_message_bytes


def test_a_file_is_decoded_without_holding_all_its_channels_or_more_than_one_float_copy(tmp_path):
    # 1M frames of 4 channels: 32 MB as float64 frames; the mono clip is 8 MB as floats, 2 MB as PCM16
    frames = 1_000_000
    path = tmp_path / "four_channels.wav"
    rng = np.random.default_rng(7)
    soundfile.write(path, rng.uniform(-0.5, 0.5, (frames, 4)), 16_000, subtype="PCM_16")
    tracemalloc.start()
    try:
        stimulus = Stimulus.from_file(path, 16_000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert stimulus.samples.size == frames and stimulus.source_channels == 4
    # at most the mono floats twice (joining the blocks, then scaling them), the PCM16 and one block:
    # the whole file as float64 frames (32 bytes a frame) is never held
    assert peak < 20 * frames, f"peak {peak / frames:.1f} bytes a frame"


def test_a_chunk_holds_its_audio_once_as_the_base64_it_is_sent_as():
    chunk = Clip("speech", "test", Stimulus.speech()).chunks(24_000, 500.0, None)[0]
    pcm = chunk.pcm
    assert chunk.duration_ms == pytest.approx(1000 * len(pcm) / 2 / 24_000)
    assert base64.b64decode(chunk.base64) == pcm  # what the drivers send
    held = sum(sys.getsizeof(value) for value in vars(chunk).values())
    assert held < 1.4 * len(pcm), f"{held} bytes held for {len(pcm)} bytes of PCM16"  # base64 is 4/3 of it
