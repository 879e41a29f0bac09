"""First audible audio: the 10 ms level threshold and the playback model, on synthetic replies."""

import numpy as np
import pytest

from bootbench.audible import AudibleDetector

RATE = 24_000
MS = 1_000_000  # ns
T0 = 5_000_000_000  # an arbitrary arrival clock


def noise(ms: float, dbfs: float = -70.0, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(0.0, 32768 * 10 ** (dbfs / 20), int(ms * RATE / 1000))


def tone(ms: float, amplitude: float = 0.1, frequency: float = 440.0) -> np.ndarray:
    n = int(ms * RATE / 1000)
    return amplitude * 32767 * np.sin(2 * np.pi * frequency * (np.arange(n) + 0.25 * RATE / frequency) / RATE)


def pcm(samples: np.ndarray) -> bytes:
    return np.clip(np.round(samples), -32768, 32767).astype("<i2").tobytes()


def chunks_of(audio: bytes, chunk_ms: float) -> list[bytes]:
    step = int(2 * RATE * chunk_ms / 1000)
    return [audio[i:i + step] for i in range(0, len(audio), step)]


def feed_realtime(detector: AudibleDetector, parts: list[bytes], start_ns: int = T0):
    """Chunks arriving exactly at real-time pace (each when the previous one has played)."""
    found, at = None, start_ns
    for part in parts:
        found = detector.feed(part, at)
        at += round(len(part) // 2 * 1e9 / RATE)
    return found


@pytest.mark.parametrize("chunk_ms", [40, 7, 1000])
def test_leading_noise_then_tone_is_found_where_the_tone_starts_whatever_the_chunking(chunk_ms):
    audio = pcm(np.concatenate([noise(230), tone(300)]))
    detector = AudibleDetector(RATE)
    found = feed_realtime(detector, chunks_of(audio, chunk_ms))
    assert found is not None
    assert found.first_arrival_ns == T0
    assert found.leading_silence_ms == pytest.approx(230.0, abs=0.1)
    assert found.sample == pytest.approx(230 * 24, abs=2)
    assert found.play_ns == T0 + round(found.sample * 1e9 / RATE)
    assert found.level_dbfs > -50 and found.underrun_ms == 0


def test_audible_in_the_first_chunk_has_no_leading_silence():
    detector = AudibleDetector(RATE)
    found = detector.feed(pcm(tone(40)), T0)
    assert found is not None and found.sample == 0 and found.leading_silence_ms == 0.0


def test_a_late_chunk_delays_the_play_time_of_what_follows_it():
    """Chunk 2 arrives 100 ms after chunk 1 finished playing: the tone in chunk 3 plays 100 ms later."""
    parts = chunks_of(pcm(np.concatenate([noise(80), tone(40)])), 40)
    detector = AudibleDetector(RATE)
    assert detector.feed(parts[0], T0) is None
    assert detector.feed(parts[1], T0 + 140 * MS) is None            # due at T0 + 40 ms
    found = detector.feed(parts[2], T0 + 150 * MS)                    # due at T0 + 180 ms: not late
    assert found is not None
    assert found.play_ns == T0 + 180 * MS
    assert found.leading_silence_ms == pytest.approx(180.0)
    assert found.underrun_ms == pytest.approx(100.0)


def test_chunks_arriving_early_in_a_burst_play_back_to_back():
    parts = chunks_of(pcm(np.concatenate([noise(400), tone(40)])), 40)
    detector = AudibleDetector(RATE)
    found = [detector.feed(part, T0 + i * MS) for i, part in enumerate(parts)][-1]   # all within 11 ms
    assert found is not None and found.leading_silence_ms == pytest.approx(400.0, abs=0.1)


def test_a_reply_that_is_never_audible_reports_nothing_and_keeps_count():
    detector = AudibleDetector(RATE)
    assert feed_realtime(detector, chunks_of(pcm(noise(600, dbfs=-60)), 40)) is None
    assert detector.found is None
    assert detector.audio_ms == pytest.approx(600.0)
    assert detector.play_end_ns == T0 + 600 * MS


def test_the_threshold_is_an_rms_over_10_ms():
    """A constant level 1 dB above the threshold is audible, 1 dB below it is not."""
    level = lambda dbfs: np.full(RATE, 32768 * 10 ** (dbfs / 20))   # noqa: E731  (RMS of a constant = its value)
    assert AudibleDetector(RATE, audible_dbfs=-40).feed(pcm(level(-41)), T0) is None
    found = AudibleDetector(RATE, audible_dbfs=-40).feed(pcm(level(-39)), T0)
    assert found is not None and found.sample == pytest.approx(0.79 * 240, abs=2)   # 10^(-2/10) of the window


def test_a_sample_split_across_chunks_is_decoded_whole():
    audio = pcm(np.concatenate([noise(50), tone(50)]))
    # odd byte counts; the tone's first sample (bytes 2400-2401) is split between the third and fourth chunk
    parts = [audio[:1201], audio[1201:2399], audio[2399:2401], audio[2401:]]
    detector = AudibleDetector(RATE)
    found = [detector.feed(part, T0 + i * MS) for i, part in enumerate(parts)]
    assert found[:3] == [None, None, None]
    assert found[3] is not None and found[3].sample == pytest.approx(1200, abs=2)
    assert found[3].leading_silence_ms == pytest.approx(50.0, abs=0.1)


def test_decoding_stops_once_found():
    detector = AudibleDetector(RATE)
    found = detector.feed(pcm(tone(40)), T0)
    assert detector.feed(b"\x00\x01" * 5000, T0 + 40 * MS) is found
    assert detector.samples == 960


@pytest.mark.parametrize("kwargs", [{"rate": 0}, {"audible_dbfs": 3}])
def test_nonsense_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        AudibleDetector(**kwargs)


def first_loud_sample(samples: np.ndarray, dbfs: float = -50.0) -> int | None:
    """The definition, computed the slow way: the first n whose 10 ms window (silence before the reply) is loud."""
    window = round(10 * RATE / 1000)
    squares = np.concatenate([np.zeros(window - 1), np.asarray(samples, dtype=np.float64) ** 2])
    threshold = window * (10 ** (dbfs / 20) * 32768) ** 2
    for n in range(len(samples)):
        if squares[n:n + window].sum() > threshold:
            return n
    return None


def test_a_quiet_chunk_after_a_loud_but_short_burst_still_completes_a_loud_window():
    """A chunk whose samples are each below the level can end a loud window that began with the last chunk's burst.

    The detector skips the window sums of a chunk in which no sample is above the level (most of a reply's
    leading silence): only while the samples kept from the chunk before are below it too.
    """
    level = 32768 * 10 ** (-50 / 20)  # the amplitude of a -50 dBFS window
    burst = np.round(np.concatenate([np.zeros(400), np.full(100, 1.5 * level)]))  # 100 samples at +3.5 dB: too short
    after = np.round(np.full(200, 0.99 * level))  # every sample below the level, but with the burst the window is loud
    assert first_loud_sample(burst) is None and first_loud_sample(after) is None
    expected = first_loud_sample(np.concatenate([burst, after]))
    assert expected is not None and expected >= len(burst)
    detector = AudibleDetector(RATE)
    assert detector.feed(pcm(burst), T0) is None
    found = detector.feed(pcm(after), T0 + 50 * MS)
    assert found is not None and found.sample == expected


@pytest.mark.parametrize("seed", range(6))
def test_the_first_audible_sample_is_the_definitions_whatever_the_chunking(seed):
    rng = np.random.default_rng(seed)
    level = 32768 * 10 ** (-50 / 20)
    parts = [rng.normal(0, level * rng.uniform(0.05, 0.6), int(rng.integers(1, 1500))) for _ in range(8)]
    parts.insert(int(rng.integers(2, 8)), np.full(int(rng.integers(20, 200)), level * rng.uniform(1.0, 2.5)))
    samples = np.clip(np.round(np.concatenate(parts)), -32768, 32767)
    expected = first_loud_sample(samples)
    audio = pcm(samples)
    cuts = sorted(int(c) for c in rng.integers(0, len(audio), 12))
    detector, found = AudibleDetector(RATE), None
    for start, end in zip([0, *cuts], [*cuts, len(audio)]):
        found = detector.feed(audio[start:end], T0) or found
    assert (found.sample if found else None) == expected
