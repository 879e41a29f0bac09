"""Clip sets: which clip each iteration sends, from the values of ``--audio``.

``--audio`` is repeatable; each value is one of

- ``sine``: the seed's 1 s 440 Hz tone at 16 kHz (the default when no value is given);
- ``speech``: the recording shipped with bootbench (CMU ARCTIC arctic_a0007, 4 s);
- a file path: any audio file libsndfile reads;
- a folder: every audio file directly in it (by extension, hidden files skipped), sorted by name.

The clips are used in turn: iteration ``k`` (the run's 1-based global
iteration number) sends clip ``(k - 1) mod n``, so iteration 1 sends the first
clip and a run of ``n`` iterations sends each clip once. A file or folder
literally called ``sine`` or ``speech`` is given as ``./sine``.

    clips = load_clips(["speech", "clips/"])
    clip = clips.clip_for(iteration)       # clip.name goes into the sample, clip.stimulus onto the wire
    clips.describe(24000)                  # for metrics.json: name, source, duration_ms, rate sent, source rate
                                           # and channels, sha256
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bootbench.audio import CHUNK_SAMPLES, DEFAULT_RATE, SPEECH_CLIP, AudioError, Chunk, Stimulus

SINE = "sine"
SPEECH = "speech"
AUDIO_EXTENSIONS = frozenset({".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff",
                              ".aifc", ".au", ".snd", ".caf", ".w64", ".rf64"})
"""Extensions a folder's audio files are recognised by (formats libsndfile reads)."""


@dataclass(frozen=True)
class Clip:
    """One stimulus of a set and the name a sample records for it."""

    name: str
    source: str
    stimulus: Stimulus
    _chunked: dict[tuple[int, float, int | None], list[Chunk]] = field(
        default_factory=dict, repr=False, compare=False)

    def chunks(self, rate: int, trailing_silence_ms: float = 0.0, chunk_samples: int | None = CHUNK_SAMPLES) -> list[Chunk]:
        """The clip as a driver sends it: at ``rate``, with trailing silence, in chunks (one when None); cached."""
        key = (rate, trailing_silence_ms, chunk_samples)
        if key not in self._chunked:
            self._chunked[key] = self.stimulus.at_rate(rate).with_silence(trailing_silence_ms).chunks(chunk_samples)
        return self._chunked[key]

    def describe(self, rate: int | None = None) -> dict[str, Any]:
        """The clip for metrics.json, as sent at ``rate`` (the provider's input rate; None: the decoded clip's).

        ``rate`` is the rate sent, ``source_rate`` and ``source_channels`` those
        of the source (a file's own, before it was averaged to mono and
        resampled); ``sha256`` is :attr:`Stimulus.sha256`, of the decoded
        clip at 16 kHz, so one clip has one digest for every provider.
        """
        stim = self.stimulus
        return {"name": self.name, "source": self.source, "duration_ms": round(stim.duration_ms, 3),
                "rate": rate or stim.rate, "source_rate": stim.source_rate or stim.rate,
                "source_channels": stim.source_channels, "sha256": stim.sha256}


@dataclass(frozen=True)
class ClipSet:
    """The clips of a run, in the order iterations use them."""

    clips: tuple[Clip, ...]

    def __post_init__(self) -> None:
        if not self.clips:
            raise ValueError("a clip set needs at least one clip")

    def __len__(self) -> int:
        return len(self.clips)

    def __iter__(self) -> Iterator[Clip]:
        return iter(self.clips)

    def clip_for(self, iteration: int) -> Clip:
        """The clip of the run's 1-based global ``iteration``: clip ``(iteration - 1) mod n``."""
        if iteration < 1:
            raise ValueError(f"iterations are numbered from 1, not {iteration}")
        return self.clips[(iteration - 1) % len(self.clips)]

    @property
    def warnings(self) -> list[str]:
        """Every clip's warnings (a silent file), for the caller to show."""
        return [w for clip in self.clips for w in clip.stimulus.warnings]

    @property
    def max_duration_ms(self) -> float:
        """The longest clip, for checks against ``--timeout`` at real-time pace."""
        return max(clip.stimulus.duration_ms for clip in self.clips)

    def describe(self, rate: int | None = None) -> list[dict[str, Any]]:
        """One entry per clip, in order, as sent at ``rate`` (see :meth:`Clip.describe`)."""
        return [clip.describe(rate) for clip in self.clips]

    def summary(self, rate: int | None = None) -> str:
        """One line for logs and ``run.audio``: the single clip's description as sent at ``rate``, or the clips."""
        if len(self.clips) == 1:
            stimulus = self.clips[0].stimulus
            return stimulus.description_at(rate) if rate else stimulus.description
        names = ", ".join(clip.name for clip in self.clips[:5]) + (", ..." if len(self.clips) > 5 else "")
        return f"{len(self.clips)} clips in turn ({names})"


def load_clips(values: Sequence[str] | None, rate: int = DEFAULT_RATE) -> ClipSet:
    """The clip set of ``--audio`` values (None or empty: the sine); raises :class:`AudioError` with one sentence."""
    clips: list[Clip] = []
    for value in values or [SINE]:
        text = str(value).strip()
        if not text:
            raise AudioError("--audio needs a value: sine, speech, an audio file or a folder of them")
        if text == SINE:
            clips.append(Clip(SINE, "built-in 440 Hz sine", Stimulus.sine(rate=rate)))
        elif text == SPEECH:
            clips.append(Clip(SPEECH, f"built-in {SPEECH_CLIP.name} (CMU ARCTIC)", Stimulus.speech(rate)))
        elif Path(text).is_dir():
            clips += [_file_clip(path, rate) for path in _folder_files(Path(text))]
        else:
            clips.append(_file_clip(Path(text), rate))
    return ClipSet(tuple(_unique_names(clips)))


def _folder_files(folder: Path) -> list[Path]:
    try:
        entries = sorted(folder.iterdir(), key=lambda p: p.name)
    except OSError as exc:
        raise AudioError(f"audio folder {folder} cannot be read ({exc.strerror or exc})") from None
    files = [p for p in entries if p.suffix.lower() in AUDIO_EXTENSIONS and not p.name.startswith(".") and p.is_file()]
    if not files:
        shown = ", ".join(sorted(AUDIO_EXTENSIONS)[:6])
        raise AudioError(f"audio folder {folder} holds no audio files ({shown}, ...)")
    return files


def _file_clip(path: Path, rate: int) -> Clip:
    return Clip(path.name, str(path), Stimulus.from_file(path, rate))


def _unique_names(clips: list[Clip]) -> list[Clip]:
    """Clips keep their file name unless two share it; then each of those is named by its path."""
    counts: dict[str, int] = {}
    for clip in clips:
        counts[clip.name] = counts.get(clip.name, 0) + 1
    return [clip if counts[clip.name] == 1 or clip.name in (SINE, SPEECH)
            else Clip(clip.source, clip.source, clip.stimulus) for clip in clips]
