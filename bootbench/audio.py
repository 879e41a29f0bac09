"""The stimulus: what bootbench says to the service.

A :class:`Stimulus` is mono PCM16 little-endian audio at a known rate, built
from a sine (the default) or loaded from a WAV file, and cut into the
messages a provider sends.

    stim = Stimulus.sine()                       # 1 s, 440 Hz, 16 kHz
    stim = Stimulus.from_wav("hello.wav")        # any rate/channels -> 16 kHz mono
    for chunk in stim.with_silence(500).chunks(1024): ...
"""

from __future__ import annotations

import base64
import wave
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from bootbench.wire import SILENCE_THRESHOLD

DEFAULT_RATE = 16_000
DEFAULT_SECONDS = 1.0
DEFAULT_FREQUENCY = 440.0
DEFAULT_AMPLITUDE = 0.5
CHUNK_SAMPLES = 1024
"""64 ms at 16 kHz: the chunk size of the vendor's demo client."""


class AudioError(ValueError):
    """The audio file cannot be used as a stimulus; the message says why."""


@dataclass(frozen=True)
class Stimulus:
    """Mono PCM16 samples at ``rate`` Hz, plus a description for reports."""

    samples: np.ndarray
    rate: int
    description: str

    @classmethod
    def sine(
        cls,
        seconds: float = DEFAULT_SECONDS,
        frequency: float = DEFAULT_FREQUENCY,
        rate: int = DEFAULT_RATE,
        amplitude: float = DEFAULT_AMPLITUDE,
    ) -> Stimulus:
        t = np.arange(int(round(seconds * rate))) / rate
        wave_ = amplitude * np.sin(2 * np.pi * frequency * t)
        return cls(_to_pcm16(wave_), rate, f"sine {frequency:g} Hz, {seconds:g} s, {rate} Hz mono PCM16")

    @classmethod
    def from_wav(cls, path: str | Path, rate: int = DEFAULT_RATE) -> Stimulus:
        """Load a PCM WAV file of any rate and channel count as mono PCM16 at ``rate``."""
        path = Path(path)
        try:
            with wave.open(str(path), "rb") as wav:
                channels = wav.getnchannels()
                width = wav.getsampwidth()
                source_rate = wav.getframerate()
                frames = wav.readframes(wav.getnframes())
        except FileNotFoundError:
            raise AudioError(f"audio file {path} does not exist") from None
        except IsADirectoryError:
            raise AudioError(f"audio file {path} is a directory") from None
        except PermissionError:
            raise AudioError(f"audio file {path} cannot be read (permission denied)") from None
        except (wave.Error, EOFError) as exc:
            raise AudioError(f"audio file {path} is not a PCM WAV file ({exc})") from None
        except OSError as exc:
            raise AudioError(f"audio file {path} cannot be read ({exc.strerror or exc})") from None
        if width not in (1, 2, 3, 4):
            raise AudioError(f"audio file {path} has an unsupported sample width of {width} bytes")
        samples = _decode_pcm(frames, width)
        if samples.size == 0 or source_rate <= 0:
            raise AudioError(f"audio file {path} holds no audio")
        mono = samples.reshape(-1, channels).mean(axis=1)
        resampled = resample(mono, source_rate, rate)
        description = (
            f"{path.name} ({source_rate} Hz, {channels} ch, {8 * width}-bit) "
            f"as {rate} Hz mono PCM16, {resampled.size / rate:.3f} s"
        )
        return cls(_to_pcm16(resampled), rate, description)

    @property
    def duration_ms(self) -> float:
        return 1000.0 * self.samples.size / self.rate

    def at_rate(self, rate: int) -> Stimulus:
        """The same audio resampled to ``rate`` (OpenAI Realtime wants 24 kHz)."""
        if rate == self.rate:
            return self
        floats = resample(self.samples.astype(np.float64) / 32768.0, self.rate, rate)
        return Stimulus(_to_pcm16(floats), rate, self.description.replace(f"{self.rate} Hz mono", f"{rate} Hz mono"))

    def with_silence(self, milliseconds: float) -> Stimulus:
        """The clip followed by ``milliseconds`` of digital silence."""
        if milliseconds <= 0:
            return self
        pad = np.zeros(int(round(milliseconds * self.rate / 1000)), dtype=np.int16)
        return Stimulus(np.concatenate([self.samples, pad]), self.rate, f"{self.description} + {milliseconds:g} ms silence")

    def chunks(self, size: int | None = None) -> list[Chunk]:
        """The audio as consecutive chunks of ``size`` samples (all of it in one when None)."""
        size = size or max(self.samples.size, 1)
        return [Chunk.of(self.samples[i : i + size], self.rate) for i in range(0, self.samples.size, size)]


@dataclass(frozen=True)
class Chunk:
    """One message's worth of audio, ready for the wire."""

    pcm: bytes
    rate: int
    peak: float

    @classmethod
    def of(cls, samples: np.ndarray, rate: int) -> Chunk:
        peak = float(np.abs(samples.astype(np.int32)).max(initial=0)) / 32768.0
        return cls(samples.astype("<i2").tobytes(), rate, round(peak, 6))

    @property
    def has_audio(self) -> bool:
        return self.peak > SILENCE_THRESHOLD

    @cached_property
    def base64(self) -> str:
        """The PCM as base64 text, encoded once: a driver sends the same chunks every cycle."""
        return base64.b64encode(self.pcm).decode("ascii")

    @property
    def duration_ms(self) -> float:
        return 1000.0 * len(self.pcm) / 2 / self.rate


def resample(samples: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """Linear-interpolation resampling of float samples; length scales exactly with the rate."""
    if source_rate == target_rate:
        return samples.astype(np.float64)
    n_out = int(round(samples.size * target_rate / source_rate))
    source_t = np.arange(samples.size) / source_rate
    target_t = np.arange(n_out) / target_rate
    return np.interp(target_t, source_t, samples.astype(np.float64))


def _decode_pcm(frames: bytes, width: int) -> np.ndarray:
    """WAV PCM bytes as floats in -1..1."""
    if width == 1:
        return (np.frombuffer(frames, dtype=np.uint8).astype(np.float64) - 128.0) / 128.0
    if width == 2:
        return np.frombuffer(frames, dtype="<i2").astype(np.float64) / 32768.0
    if width == 3:
        raw = np.frombuffer(frames, dtype=np.uint8).reshape(-1, 3)
        ints = (raw[:, 0].astype(np.int32) | (raw[:, 1].astype(np.int32) << 8) | (raw[:, 2].astype(np.int32) << 16))
        ints = np.where(ints & 0x800000, ints - 0x1000000, ints)
        return ints.astype(np.float64) / 8388608.0
    return np.frombuffer(frames, dtype="<i4").astype(np.float64) / 2147483648.0


def _to_pcm16(samples: np.ndarray) -> np.ndarray:
    return np.clip(np.round(samples * 32767.0), -32768, 32767).astype(np.int16)
