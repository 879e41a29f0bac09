"""The stimulus: decoding (soundfile), conversion to 16 kHz mono PCM16 (soxr), chunking, and clear errors."""

import base64
import hashlib
import wave

import numpy as np
import pytest
import soundfile

from bootbench.audio import CHUNK_SAMPLES, SPEECH_CLIP, AudioError, Stimulus


def write_wav(path, samples: np.ndarray, rate: int, width: int = 2) -> None:
    channels = 1 if samples.ndim == 1 else samples.shape[1]
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        wav.writeframes(samples.astype("<i2").tobytes())


def tone(seconds: float, rate: int, frequency: float = 440.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(rate * seconds))) / rate
    return amplitude * np.sin(2 * np.pi * frequency * t)


def dominant_hz(stim: Stimulus) -> float:
    spectrum = np.abs(np.fft.rfft(stim.samples.astype(float)))
    return np.argmax(spectrum) * stim.rate / stim.samples.size


def test_44k1_stereo_wav_becomes_16k_mono_pcm16_of_the_right_length(tmp_path):
    rate, seconds = 44_100, 1.5
    left = (tone(seconds, rate) * 32767).astype(np.int16)
    path = tmp_path / "stereo.wav"
    write_wav(path, np.stack([left, left], axis=1), rate)

    stim = Stimulus.from_wav(path)

    assert stim.rate == 16_000
    assert stim.samples.dtype == np.int16 and stim.samples.ndim == 1
    assert stim.samples.size == 24_000
    assert stim.duration_ms == pytest.approx(1500.0)
    assert np.abs(stim.samples).max() == pytest.approx(0.5 * 32767, rel=0.01)
    assert dominant_hz(stim) == pytest.approx(440, abs=2)
    assert stim.warnings == ()


def test_resampling_is_band_limited_so_a_tone_above_8k_does_not_alias_into_the_16k_clip(tmp_path):
    """Linear interpolation folded a 10 kHz tone at 44.1 kHz down to 6 kHz at 16 kHz; soxr removes it."""
    path = tmp_path / "high.wav"
    soundfile.write(path, tone(1.0, 44_100, frequency=10_000), 44_100, subtype="PCM_16")
    stim = Stimulus.from_file(path)
    steady = np.abs(stim.samples[800:-800].astype(int)).max() / 32768   # past the filter's edge transients
    assert steady < 0.001, f"a 10 kHz tone survives resampling to 16 kHz at peak {steady:.3f} (linear: 0.49)"


@pytest.mark.parametrize("format_, subtype, channels, suffix", [
    ("WAVEX", "PCM_24", 1, "wav"),      # sox's 24-bit: WAVE_FORMAT_EXTENSIBLE, format tag 65534
    ("WAVEX", "PCM_16", 4, "wav"),      # any 4-channel WAV is extensible
    ("WAV", "FLOAT", 1, "wav"),         # format tag 3
    ("WAV", "PCM_U8", 2, "wav"),
    ("FLAC", "PCM_16", 2, "flac"),
    ("OGG", "VORBIS", 1, "ogg"),
    ("MP3", "MPEG_LAYER_III", 1, "mp3"),
])
def test_every_format_libsndfile_reads_becomes_the_same_16k_mono_clip(tmp_path, format_, subtype, channels, suffix):
    rate = 48_000 if format_ != "MP3" else 44_100
    mono = tone(1.0, rate)
    path = tmp_path / f"clip.{suffix}"
    soundfile.write(path, np.stack([mono] * channels, axis=1) if channels > 1 else mono, rate,
                    format=format_, subtype=subtype)

    stim = Stimulus.from_file(path)

    assert stim.rate == 16_000
    assert stim.duration_ms == pytest.approx(1000.0, abs=60 if format_ == "MP3" else 0.1)
    assert dominant_hz(stim) == pytest.approx(440, abs=2)
    assert stim.peak == pytest.approx(0.5, abs=0.05)
    assert f"{channels} ch" in stim.description and subtype in stim.description


def test_24_bit_extensible_wav_keeps_its_precision(tmp_path):
    """The lowest 8 bits of a 24-bit file must not be read as a second sample (the hand-written parser's risk)."""
    path = tmp_path / "ramp24.wav"
    ramp = np.linspace(-0.25, 0.25, 16_000)
    soundfile.write(path, ramp, 16_000, format="WAVEX", subtype="PCM_24")
    stim = Stimulus.from_file(path)
    assert stim.samples.size == 16_000
    assert np.abs(stim.samples.astype(float) - ramp * 32768).max() <= 1.0


def test_stereo_channels_are_averaged(tmp_path):
    frames = np.stack([np.full(1600, 10_000), np.full(1600, -2_000)], axis=1)
    path = tmp_path / "avg.wav"
    write_wav(path, frames, 16_000)
    assert set(Stimulus.from_wav(path).samples.tolist()) == {4_000}


def test_a_16k_pcm16_file_is_sent_bit_exact():
    stim = Stimulus.speech()
    raw, rate = soundfile.read(SPEECH_CLIP, dtype="int16")
    assert rate == 16_000 and stim.rate == 16_000
    assert np.array_equal(stim.samples, raw)
    assert stim.sha256 == hashlib.sha256(raw.astype("<i2").tobytes()).hexdigest()


def test_the_shipped_speech_clip_is_four_seconds_of_arctic_a0007_with_its_licence():
    stim = Stimulus.speech()
    assert stim.duration_ms == pytest.approx(4000.0)
    assert stim.description.startswith("arctic_a0007.wav (WAV PCM_16, 16000 Hz, 1 ch)")
    assert stim.peak > 0.1 and stim.warnings == ()
    licence = (SPEECH_CLIP.parent / "ARCTIC-LICENSE.txt").read_text()
    assert "Carnegie Mellon University" in licence and "free for use for any purpose" in licence


def test_default_sine_is_one_second_of_16k_pcm16_with_the_seeds_bytes():
    stim = Stimulus.sine()
    assert (stim.rate, stim.samples.size) == (16_000, 16_000)
    assert "440 Hz" in stim.description
    # the seed scaled by 32767: sample 9 of sin(2*pi*440*n/16000) * 0.5
    assert stim.samples[9] == round(0.5 * 32767 * np.sin(2 * np.pi * 440 * 9 / 16000))
    assert stim.sha256 == hashlib.sha256(stim.samples.astype("<i2").tobytes()).hexdigest()


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
    assert dominant_hz(stim) == pytest.approx(440, abs=1)
    assert "24000 Hz mono" in stim.description


def test_an_empty_file_says_it_is_empty(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(AudioError, match=r"^audio file .*empty\.wav is empty$"):
        Stimulus.from_file(path)


def test_a_wav_with_zero_samples_says_it_holds_no_audio(tmp_path):
    path = tmp_path / "zero.wav"
    write_wav(path, np.zeros(0), 16_000)
    with pytest.raises(AudioError, match=r"holds no audio \(0 samples\)$"):
        Stimulus.from_file(path)


@pytest.mark.parametrize("content", [b"not a wav at all", b"RIFF\x00\x00\x00\x00WAVEjunk"])
def test_non_audio_file_is_one_clear_error(tmp_path, content):
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(AudioError, match="is not in an audio format bootbench can read") as caught:
        Stimulus.from_file(path)
    assert "\n" not in str(caught.value)


def test_missing_file_and_directory_are_one_clear_error(tmp_path):
    with pytest.raises(AudioError, match="does not exist"):
        Stimulus.from_wav(tmp_path / "nope.wav")
    with pytest.raises(AudioError, match="is a directory"):
        Stimulus.from_file(tmp_path)


@pytest.mark.parametrize("amplitude, words", [(0.0, "digital silence"), (0.005, "peak is -46.0 dBFS")])
def test_a_silent_clip_is_accepted_with_a_warning(tmp_path, amplitude, words):
    path = tmp_path / "quiet.wav"
    soundfile.write(path, tone(0.5, 16_000, amplitude=amplitude), 16_000, subtype="PCM_16")
    stim = Stimulus.from_file(path)
    assert stim.samples.size == 8_000
    (warning,) = stim.warnings
    assert "quiet.wav is silent" in warning and words in warning and "nothing to answer" in warning


def test_a_file_that_cannot_be_opened_says_why_and_not_that_its_format_is_wrong(tmp_path, monkeypatch):
    """libsndfile reports an unreadable file as "System error"; the file is opened by Python first to say why."""
    path = tmp_path / "locked.wav"
    path.write_bytes(b"RIFF")
    real_open = type(path).open

    def refuse(self, *args, **kwargs):
        if self == path:
            raise PermissionError(13, "Permission denied")
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(type(path), "open", refuse)
    with pytest.raises(AudioError, match=r"locked\.wav cannot be read \(permission denied\)$"):
        Stimulus.from_file(path)


def test_a_chunks_base64_is_encoded_once_and_is_its_pcm():
    chunk = Stimulus.sine().chunks()[0]
    assert chunk.base64 is chunk.base64
    assert base64.b64decode(chunk.base64) == chunk.pcm
    assert chunk == Stimulus.sine().chunks()[0]  # the cached text is not part of the value
