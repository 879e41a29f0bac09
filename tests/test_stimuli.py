"""Clip sets: the values of --audio, which clip each iteration sends, and what metrics.json records of them."""

import numpy as np
import pytest
import soundfile

from bootbench.audio import AudioError, Stimulus
from bootbench.stimuli import load_clips
from support.provider_table import BUILTINS, driver


def write(path, seconds: float, rate: int = 16_000, frequency: float = 440.0) -> None:
    t = np.arange(int(seconds * rate)) / rate
    soundfile.write(path, 0.3 * np.sin(2 * np.pi * frequency * t), rate, subtype="PCM_16")


def test_no_value_is_the_seeds_sine():
    clips = load_clips([])
    (clip,) = clips
    assert clip.name == "sine"
    assert np.array_equal(clip.stimulus.samples, Stimulus.sine().samples)
    assert clips.describe() == [{"name": "sine", "source": "built-in 440 Hz sine", "duration_ms": 1000.0,
                                 "rate": 16000, "source_rate": 16000, "source_channels": 1,
                                 "sha256": Stimulus.sine().sha256}]


def test_iteration_k_uses_clip_k_minus_1_mod_n_over_keywords_files_and_a_sorted_folder(tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    write(folder / "b.wav", 0.3)
    write(folder / "a.flac", 0.2, rate=44_100)
    (folder / "notes.txt").write_text("not audio")
    (folder / ".hidden.wav").write_bytes(b"")
    single = tmp_path / "one.wav"
    write(single, 0.5)

    clips = load_clips(["speech", str(folder), str(single), "sine"])

    assert [c.name for c in clips] == ["speech", "a.flac", "b.wav", "one.wav", "sine"]
    assert [clips.clip_for(k).name for k in range(1, 12)] == [
        "speech", "a.flac", "b.wav", "one.wav", "sine", "speech", "a.flac", "b.wav", "one.wav", "sine", "speech"]
    described = {d["name"]: d for d in clips.describe()}
    assert described["a.flac"]["duration_ms"] == pytest.approx(200.0)
    assert described["a.flac"]["rate"] == 16_000
    assert described["speech"]["duration_ms"] == 4000.0
    assert len({d["sha256"] for d in described.values()}) == 5
    assert clips.max_duration_ms == 4000.0
    assert clips.summary().startswith("5 clips in turn (speech, a.flac, b.wav")
    with pytest.raises(ValueError, match="numbered from 1"):
        clips.clip_for(0)


def test_clips_with_the_same_file_name_are_named_by_their_path(tmp_path):
    for sub in ("x", "y"):
        (tmp_path / sub).mkdir()
        write(tmp_path / sub / "hello.wav", 0.1)
    clips = load_clips([str(tmp_path / "x" / "hello.wav"), str(tmp_path / "y" / "hello.wav")])
    assert [c.name for c in clips] == [str(tmp_path / "x" / "hello.wav"), str(tmp_path / "y" / "hello.wav")]


def test_chunks_are_prepared_once_per_rate_silence_and_size():
    (clip,) = load_clips(["sine"])
    chunks = clip.chunks(24_000, 500, 1536)
    assert clip.chunks(24_000, 500, 1536) is chunks
    assert sum(len(c.pcm) for c in chunks) == 2 * 24_000 * 3 // 2
    (burst,) = clip.chunks(16_000, 0, None)
    assert len(burst.pcm) == 32_000


def test_an_empty_folder_and_a_bad_file_are_one_sentence_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(AudioError, match=r"audio folder .*empty holds no audio files \(\.aif"):
        load_clips([str(tmp_path / "empty")])
    with pytest.raises(AudioError, match="does not exist"):
        load_clips(["sine", str(tmp_path / "missing.wav")])
    with pytest.raises(AudioError, match="needs a value"):
        load_clips([" "])


def test_a_silent_file_in_the_set_is_a_warning_for_the_caller(tmp_path):
    soundfile.write(tmp_path / "silent.wav", np.zeros(1600), 16_000, subtype="PCM_16")
    clips = load_clips(["speech", str(tmp_path / "silent.wav")])
    (warning,) = clips.warnings
    assert "silent.wav is silent (digital silence" in warning


@pytest.mark.parametrize("rate, channels", [(8_000, 1), (44_100, 2), (48_000, 6)])
def test_a_clip_records_the_rate_sent_and_its_source_rate_and_channels_separately(tmp_path, rate, channels):
    # issue 20 item 8: run.clips said 16000 Hz for every file (8, 44.1, 48 kHz) and for OpenAI (24 kHz sent)
    path = tmp_path / f"clip{rate}.wav"
    t = np.arange(int(0.25 * rate)) / rate
    soundfile.write(path, np.repeat((0.3 * np.sin(2 * np.pi * 440 * t))[:, None], channels, axis=1), rate,
                    subtype="PCM_16")
    clips = load_clips([str(path)])
    for sent in (16_000, 24_000):
        (described,) = clips.describe(sent)
        assert (described["rate"], described["source_rate"], described["source_channels"]) == (sent, rate, channels)
        assert described["duration_ms"] == pytest.approx(250.0)
        assert described["sha256"] == clips.clips[0].stimulus.sha256   # one clip, one digest for every provider
        assert f"{rate} Hz, {channels} ch" in clips.summary(sent) and f"as {sent} Hz mono" in clips.summary(sent)
    (sine,) = load_clips([]).describe(24_000)
    assert (sine["rate"], sine["source_rate"], sine["source_channels"]) == (24_000, 16_000, 1)
    assert "24000 Hz mono" in load_clips([]).summary(24_000)


@pytest.mark.parametrize("provider", BUILTINS)
def test_a_run_records_the_rate_its_provider_was_sent(shared_ground_truth_run, provider):
    rate = driver(provider).input_rate
    run = shared_ground_truth_run(provider).metrics["run"]
    assert [(c["name"], c["rate"], c["source_rate"], c["source_channels"]) for c in run["clips"]] == [
        ("sine", rate, 16_000, 1)]
    assert f"{rate} Hz mono PCM16" in run["audio"]
