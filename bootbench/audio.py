"""The stimulus: what bootbench says to the service.

A :class:`Stimulus` is mono PCM16 little-endian audio at a known rate, built
from a sine (the default), the speech clip shipped with bootbench, or any
audio file libsndfile reads (WAV of any width and header, float WAV, FLAC,
OGG, MP3, ...), and cut into the messages a provider sends. Decoding is
soundfile's, resampling soxr's (band-limited, so 44.1 kHz -> 16 kHz does not
alias).

    stim = Stimulus.sine()                       # 1 s, 440 Hz, 16 kHz
    stim = Stimulus.speech()                     # CMU ARCTIC arctic_a0007, 16 kHz
    stim = Stimulus.from_file("hello.flac")      # any rate/channels -> 16 kHz mono
    for chunk in stim.with_silence(500).chunks(1024): ...

A file that cannot be a stimulus raises :class:`AudioError` with one
sentence saying why; a usable but silent one carries a sentence in
``warnings`` for the caller to show.
"""

from __future__ import annotations

import base64
import hashlib
import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from bootbench.errors import UserError
from bootbench.wire import SILENCE_THRESHOLD

DEFAULT_RATE = 16_000
DEFAULT_SECONDS = 1.0
DEFAULT_FREQUENCY = 440.0
DEFAULT_AMPLITUDE = 0.5
CHUNK_SAMPLES = 1024
"""64 ms at 16 kHz: the chunk size of the vendor's demo client."""

ASSETS = Path(__file__).resolve().parent / "assets"
SPEECH_CLIP = ASSETS / "arctic_a0007.wav"
"""CMU ARCTIC's arctic_a0007.wav (16 kHz, 16-bit, 4 s, one English sentence); licence in ARCTIC-LICENSE.txt."""

_FULL_SCALE = 32768.0


class AudioError(UserError, ValueError):
    """The audio file cannot be used as a stimulus; the message says why in one sentence."""


@dataclass(frozen=True)
class Stimulus:
    """Mono PCM16 samples at ``rate`` Hz, a description for reports, and warnings for the user."""

    samples: np.ndarray
    rate: int
    description: str
    warnings: tuple[str, ...] = ()
    source_rate: int = 0
    """The rate of the source (a file's own, before resampling); 0 = ``rate`` (generated audio)."""
    source_channels: int = 1
    """The channels of the source (a file's own, averaged to mono)."""

    @classmethod
    def sine(
        cls,
        seconds: float = DEFAULT_SECONDS,
        frequency: float = DEFAULT_FREQUENCY,
        rate: int = DEFAULT_RATE,
        amplitude: float = DEFAULT_AMPLITUDE,
    ) -> Stimulus:
        """The seed's stimulus: a pure tone (scaled by 32767, as the seed did, so its bytes are unchanged)."""
        t = np.arange(int(round(seconds * rate))) / rate
        wave_ = amplitude * np.sin(2 * np.pi * frequency * t)
        pcm = np.clip(np.round(wave_ * 32767.0), -32768, 32767).astype(np.int16)
        return cls(pcm, rate, f"sine {frequency:g} Hz, {seconds:g} s, {rate} Hz mono PCM16")

    @classmethod
    def speech(cls, rate: int = DEFAULT_RATE) -> Stimulus:
        """The speech clip shipped with bootbench (:data:`SPEECH_CLIP`)."""
        return cls.from_file(SPEECH_CLIP, rate)

    @classmethod
    def from_file(cls, path: str | Path, rate: int = DEFAULT_RATE) -> Stimulus:
        """Decode any audio file libsndfile reads as mono PCM16 at ``rate`` (channels averaged, soxr resampled)."""
        path = Path(path)
        mono, source_rate, channels, kind = _decode(path)
        pcm = _to_pcm16(resample(mono, source_rate, rate))
        del mono  # only the PCM16 is kept: a long clip is held once, as 2 bytes a sample
        description = (f"{path.name} ({kind}, {source_rate} Hz, {channels} ch) "
                       f"as {rate} Hz mono PCM16, {pcm.size / rate:.3f} s")
        return cls(pcm, rate, description, _silence_warnings(path, pcm), source_rate=source_rate,
                   source_channels=channels)

    from_wav = from_file
    """The seed's name for :meth:`from_file` (it read WAV only)."""

    @property
    def duration_ms(self) -> float:
        return 1000.0 * self.samples.size / self.rate

    @property
    def peak(self) -> float:
        """Largest absolute sample as a fraction of full scale (0..1)."""
        return float(np.abs(self.samples.astype(np.int32)).max(initial=0)) / _FULL_SCALE

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the samples as little-endian PCM16 bytes at ``rate`` (what identifies the clip in results).

        It is taken before a provider's resampling and trailing silence, so one clip has one digest for every
        provider; for a file it is the digest of the decoded clip, not of the file's bytes.
        """
        return hashlib.sha256(self.samples.astype("<i2").tobytes()).hexdigest()

    def at_rate(self, rate: int) -> Stimulus:
        """The same audio resampled to ``rate`` (OpenAI Realtime wants 24 kHz)."""
        if rate == self.rate:
            return self
        floats = resample(self.samples.astype(np.float64) / _FULL_SCALE, self.rate, rate)
        return replace(self, samples=_to_pcm16(floats), rate=rate, description=self.description_at(rate),
                       source_rate=self.source_rate or self.rate)

    def description_at(self, rate: int) -> str:
        """The description of this audio as it is sent at ``rate`` (without resampling it)."""
        return self.description.replace(f"{self.rate} Hz mono", f"{rate} Hz mono")

    def with_silence(self, milliseconds: float) -> Stimulus:
        """The clip followed by ``milliseconds`` of digital silence."""
        if milliseconds <= 0:
            return self
        pad = np.zeros(int(round(milliseconds * self.rate / 1000)), dtype=np.int16)
        return replace(self, samples=np.concatenate([self.samples, pad]),
                       description=f"{self.description} + {milliseconds:g} ms silence")

    def chunks(self, size: int | None = None) -> list[Chunk]:
        """The audio as consecutive chunks of ``size`` samples (all of it in one when None)."""
        size = size or max(self.samples.size, 1)
        return [Chunk.of(self.samples[i : i + size], self.rate) for i in range(0, self.samples.size, size)]


@dataclass(frozen=True)
class Chunk:
    """One message's worth of audio, ready for the wire: held once, as the base64 text every driver sends."""

    base64: str
    """The PCM16 as base64 text, encoded once: a user sends the same chunks in every cycle."""
    frames: int
    rate: int
    peak: float

    @classmethod
    def of(cls, samples: np.ndarray, rate: int) -> Chunk:
        peak = float(np.abs(samples.astype(np.int32)).max(initial=0)) / _FULL_SCALE
        text = base64.b64encode(samples.astype("<i2").tobytes()).decode("ascii")
        return cls(text, int(samples.size), rate, round(peak, 6))

    @property
    def pcm(self) -> bytes:
        """The PCM16 little-endian bytes, decoded per use (no driver sends raw bytes; kept out of memory)."""
        return base64.b64decode(self.base64)

    @property
    def has_audio(self) -> bool:
        return self.peak > SILENCE_THRESHOLD

    @property
    def duration_ms(self) -> float:
        return 1000.0 * self.frames / self.rate


def resample(samples: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """Band-limited resampling (soxr, high quality) of float samples; the length is ``round(n * target / source)``."""
    samples = np.asarray(samples, dtype=np.float64)
    if source_rate == target_rate or samples.size == 0:
        return samples
    import soxr  # here, not at import: the sine stimulus and a refused run need no resampler

    return soxr.resample(samples, source_rate, target_rate, quality="HQ")


def dbfs(fraction: float) -> float:
    """A level as a fraction of full scale (0..1) in dBFS; -inf for 0."""
    return 20 * math.log10(fraction) if fraction > 0 else -math.inf


DECODE_BLOCK_FRAMES = 1 << 16
"""Frames decoded at a time: the file's channels are averaged block by block, never held whole."""


def _decode(path: Path) -> tuple[np.ndarray, int, int, str]:
    """The file as mono floats in -1..1 (channels averaged), its rate, its channels and its format ("WAV PCM_24")."""
    import soundfile  # here, not at import: the sine stimulus needs no decoder

    try:
        if path.is_dir():
            raise AudioError(f"audio file {path} is a directory")
        size = path.stat().st_size
        if size == 0:
            raise AudioError(f"audio file {path} is empty")
        with path.open("rb") as file:   # opened here so that an OS error is reported as what it is
            with soundfile.SoundFile(file) as sound:
                kind = f"{sound.format} {sound.subtype}"
                source_rate, channels = sound.samplerate, sound.channels
                # block by block: a 30-minute stereo float file is 1.4 GB as float64 frames, 0.7 GB as mono
                data = np.concatenate([block.mean(axis=1) for block in sound.blocks(
                    DECODE_BLOCK_FRAMES, dtype="float64", always_2d=True)] or [np.zeros(0)])
    except AudioError:
        raise
    except FileNotFoundError:
        raise AudioError(f"audio file {path} does not exist") from None
    except PermissionError:
        raise AudioError(f"audio file {path} cannot be read (permission denied)") from None
    except soundfile.LibsndfileError as exc:
        reason = str(exc.error_string).strip().rstrip(".") or "unknown error"
        raise AudioError(f"audio file {path} is not in an audio format bootbench can read "
                         f"(WAV, FLAC, OGG, MP3, ...): {reason}") from None
    except OSError as exc:
        raise AudioError(f"audio file {path} cannot be read ({exc.strerror or exc})") from None
    except (RuntimeError, ValueError, TypeError) as exc:
        raise AudioError(f"audio file {path} cannot be decoded ({exc})") from None
    if data.size == 0 or source_rate <= 0:
        raise AudioError(f"audio file {path} holds no audio (0 samples)")
    return data, int(source_rate), int(channels), kind


def _silence_warnings(path: Path, pcm: np.ndarray) -> tuple[str, ...]:
    peak = float(np.abs(pcm.astype(np.int32)).max(initial=0)) / _FULL_SCALE
    if peak > SILENCE_THRESHOLD:
        return ()
    level = "digital silence" if peak == 0 else f"its peak is {dbfs(peak):.1f} dBFS"
    return (f"audio file {path} is silent ({level}, at or below the {dbfs(SILENCE_THRESHOLD):.0f} dBFS "
            "at which audio counts as present), so a service has nothing to answer",)


def _to_pcm16(samples: np.ndarray) -> np.ndarray:
    """Floats in -1..1 as PCM16 (scaled by 32768, so decoding a PCM16 file gives back its exact samples).

    One float copy at a time (rounded and clipped in place), beside the input and the PCM16 result.
    """
    scaled = samples * _FULL_SCALE
    np.round(scaled, out=scaled)
    np.clip(scaled, -32768, 32767, out=scaled)
    return scaled.astype(np.int16)
