"""The stimulus: WAV loading, conversion to 16 kHz mono PCM16, chunking."""

import base64
import wave

import numpy as np
import pytest

from bootbench.audio import CHUNK_SAMPLES, AudioError, Stimulus


def write_wav(path, samples: np.ndarray, rate: int, width: int = 2) -> None:
    channels = 1 if samples.ndim == 1 else samples.shape[1]
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        wav.writeframes(samples.astype("<i2").tobytes())


def test_44k1_stereo_wav_becomes_16k_mono_pcm16_of_the_right_length(tmp_path):
    rate, seconds = 44_100, 1.5
    t = np.arange(int(rate * seconds)) / rate
    left = (0.5 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)
    stereo = np.stack([left, left], axis=1)
    path = tmp_path / "stereo.wav"
    write_wav(path, stereo, rate)

    stim = Stimulus.from_wav(path)

    assert stim.rate == 16_000
    assert stim.samples.dtype == np.int16 and stim.samples.ndim == 1
    assert stim.samples.size == 24_000
    assert stim.duration_ms == pytest.approx(1500.0)
    assert np.abs(stim.samples).max() == pytest.approx(0.5 * 32767, rel=0.01)
    spectrum = np.abs(np.fft.rfft(stim.samples.astype(float)))
    assert np.argmax(spectrum) * 16_000 / stim.samples.size == pytest.approx(440, abs=2)


def test_stereo_channels_are_averaged(tmp_path):
    frames = np.stack([np.full(1600, 10_000), np.full(1600, -2_000)], axis=1)
    path = tmp_path / "avg.wav"
    write_wav(path, frames, 16_000)
    assert set(Stimulus.from_wav(path).samples.tolist()) == {4_000}


def test_default_sine_is_one_second_of_16k_pcm16():
    stim = Stimulus.sine()
    assert (stim.rate, stim.samples.size) == (16_000, 16_000)
    assert "440 Hz" in stim.description


def test_burst_is_one_chunk_and_realtime_is_64ms_chunks():
    stim = Stimulus.sine()
    (burst,) = stim.chunks()
    assert len(base64.b64decode(burst.base64)) == 32_000
    chunks = stim.chunks(CHUNK_SAMPLES)
    assert len(chunks) == 16
    assert chunks[0].duration_ms == pytest.approx(64.0)
    assert sum(len(c.pcm) for c in chunks) == 32_000


def test_chunk_peak_and_has_audio_follow_the_samples():
    stim = Stimulus.sine(amplitude=0.25).with_silence(200)
    chunks = stim.chunks(CHUNK_SAMPLES)
    assert chunks[0].has_audio and chunks[0].peak == pytest.approx(0.25, abs=0.001)
    assert not chunks[-1].has_audio and chunks[-1].peak == 0.0
    assert stim.duration_ms == pytest.approx(1200.0)


def test_resampling_to_24k_for_services_that_want_it():
    stim = Stimulus.sine().at_rate(24_000)
    assert (stim.rate, stim.samples.size) == (24_000, 24_000)


@pytest.mark.parametrize("content", [b"", b"not a wav at all", b"RIFF\x00\x00\x00\x00WAVEjunk"])
def test_non_audio_file_is_one_clear_error(tmp_path, content):
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(AudioError, match="is not a PCM WAV file"):
        Stimulus.from_wav(path)


def test_missing_file_is_one_clear_error(tmp_path):
    with pytest.raises(AudioError, match="does not exist"):
        Stimulus.from_wav(tmp_path / "nope.wav")


def test_a_chunks_base64_is_encoded_once_and_is_its_pcm():
    chunk = Stimulus.sine().chunks()[0]
    assert chunk.base64 is chunk.base64
    assert base64.b64decode(chunk.base64) == chunk.pcm
    assert chunk == Stimulus.sine().chunks()[0]  # the cached text is not part of the value
