"""Recorded replies (``--record-replies N|all``): the answer's audio as it arrived, kept in the run folder.

A user records turn 1's answer of every iteration (each chunk as it arrived, with its arrival stamp: the
driver keeps decoding after the answer is audible, :meth:`~bootbench.providers.base.SessionState.keep_answer_audio`)
until it stops the session, and sends it to the master as a :class:`Reply` (a dict over msgpack from a worker),
just before the iteration's sample. The master spools each reply to disk as it arrives (:class:`ReplySpool`:
raw PCM and its chunk table under ``replies/.spool/``, so memory holds none of the audio), and at the end of
the run keeps N of them (:func:`choose`: the slowest, the median and an even sample of the rest by
``first_audible_ms``; or every one), writes each as ``replies/iteration-0007.wav`` (PCM16 mono, soundfile) and
deletes the rest. ``replies/index.json`` names each kept reply's clip, its role, the live figures
(``first_response_ms``, ``first_audible_ms``, ``leading_silence_ms``), each chunk's arrival offset and size,
and how many chunks had arrived when the cycle read first_audible (``chunks_when_judged``), so the playback model of :mod:`bootbench.audible` can be replayed (``bootbench verify``,
:mod:`bootbench.views.verify`).

    spool = ReplySpool(folder, keep=5)
    spool.add(Reply.from_message(message))            # on the master, as each arrives
    spool.finish(samples, audible_dbfs=-50.0)         # at the end: WAVs + index.json, the spool removed
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from bootbench.samples import Sample

log = logging.getLogger("bootbench")

REPLIES_DIR = "replies"
INDEX_FILE = "index.json"
SPOOL_DIR = ".spool"
INDEX_SCHEMA = "bootbench/replies/v1"


@dataclass(frozen=True)
class Reply:
    """Turn 1's answer of one iteration as it arrived: PCM16 LE mono at ``rate``, cut as it came."""

    iteration: int
    clip: str
    rate: int
    arrivals_ns: tuple[int, ...]
    """Each chunk's arrival, in ns after the first chunk's (the first is 0)."""
    sizes: tuple[int, ...]
    """Each chunk's size in bytes."""
    pcm: bytes
    judged_after: int | None = None
    """How many chunks had arrived when the cycle read first_audible (None: all of them, or never read)."""

    @classmethod
    def of(cls, iteration: int, clip: str, rate: int, chunks: Sequence[tuple[int, bytes]],
           judged_after: int | None = None) -> Reply:
        """From the driver's (arrival stamp, PCM) chunks."""
        first = chunks[0][0] if chunks else 0
        return cls(iteration, clip, rate, tuple(stamp - first for stamp, _ in chunks),
                   tuple(len(pcm) for _, pcm in chunks), b"".join(pcm for _, pcm in chunks), judged_after)

    def to_message(self) -> dict[str, Any]:
        return {"iteration": self.iteration, "clip": self.clip, "rate": self.rate,
                "arrivals_ns": list(self.arrivals_ns), "sizes": list(self.sizes), "pcm": self.pcm,
                "judged_after": self.judged_after}

    @classmethod
    def from_message(cls, data: Reply | dict[str, Any]) -> Reply:
        if isinstance(data, Reply):
            return data
        return cls(int(data["iteration"]), str(data["clip"]), int(data["rate"]),
                   tuple(int(n) for n in data["arrivals_ns"]), tuple(int(n) for n in data["sizes"]),
                   bytes(data["pcm"]), data.get("judged_after"))


def parse_keep(text: str) -> int | str:
    """``--record-replies``: "all", a positive number of replies, or ""/"0" for none; ValueError with a sentence."""
    text = str(text).strip().lower()
    if text in ("", "0"):
        return 0
    if text == "all":
        return "all"
    try:
        count = int(text)
    except ValueError:
        raise ValueError(f"--record-replies must be a number of replies or all, not {text!r}") from None
    if count < 0:
        raise ValueError(f"--record-replies must be a positive number of replies or all, not {count}")
    return count


def wav_name(iteration: int) -> str:
    return f"iteration-{iteration:04d}.wav"


def _rank_key(sample: Sample) -> tuple[float, int]:
    """Slowest last: by first_audible_ms, a reply never audible slower than any (the caller heard nothing)."""
    value = sample.first_audible_ms
    return (float("inf") if value is None else value, sample.iteration)


def choose(samples: Sequence[Sample], keep: int | str) -> dict[int, str]:
    """The iterations to keep, each with its role: ``slowest``, ``median``, ``sample`` (or ``all``'s others).

    Ranked by ``first_audible_ms`` (never audible counts as slowest); the slowest, the (lower) median, then
    ``keep - 2`` more spread evenly over the other ranks (deterministic: the same run keeps the same replies).
    """
    ranked = sorted(samples, key=_rank_key)
    if not ranked or keep == 0:
        return {}
    roles = {ranked[-1].iteration: "slowest"}
    if keep == 1:
        return roles
    roles.setdefault(ranked[(len(ranked) - 1) // 2].iteration, "median")
    rest = [s.iteration for s in ranked if s.iteration not in roles]
    wanted = len(rest) if keep == "all" else max(0, int(keep) - len(roles))
    if wanted >= len(rest):
        picked = rest
    elif wanted == 1:
        picked = [rest[len(rest) // 2]]
    else:
        picked = [rest[round(i * (len(rest) - 1) / (wanted - 1))] for i in range(wanted)]
    for iteration in picked:
        roles[iteration] = "sample"
    return roles


class ReplySpool:
    """The master's recorded replies: spooled to disk as they arrive, N kept as WAV files at the end."""

    def __init__(self, folder: str | Path, keep: int | str) -> None:
        self.folder = Path(folder) / REPLIES_DIR
        self.spool = self.folder / SPOOL_DIR
        self.spool.mkdir(parents=True, exist_ok=True)
        self.keep = keep
        self.spooled: set[int] = set()
        self.finished = False

    def add(self, reply: Reply) -> None:
        """Spool one iteration's reply (raw PCM and its chunk table); a second one for the same iteration replaces it.

        One that arrives after :meth:`finish` (a straggler of a stopped run) is dropped: its sample is not counted.
        """
        if self.finished:
            log.info("the recorded reply of iteration %s arrived after the run's end; dropped", reply.iteration)
            return
        stem = self.spool / f"iteration-{reply.iteration}"
        stem.with_suffix(".pcm").write_bytes(reply.pcm)
        stem.with_suffix(".json").write_text(json.dumps(
            {"clip": reply.clip, "rate": reply.rate, "chunk_arrival_ns": list(reply.arrivals_ns),
             "chunk_bytes": list(reply.sizes), "chunks_when_judged": reply.judged_after}), encoding="utf-8")
        self.spooled.add(reply.iteration)

    def finish(self, samples: Sequence[Sample], audible_dbfs: float) -> list[dict[str, Any]]:
        """Keep the chosen replies as WAV files with ``index.json``; remove the spool. The index's entries."""
        import numpy as np
        import soundfile

        self.finished = True
        by_iteration = {s.iteration: s for s in samples if s.iteration in self.spooled
                        and s.first_response_ms is not None}
        roles = choose(list(by_iteration.values()), self.keep)
        entries = []
        for iteration in sorted(roles):
            sample, stem = by_iteration[iteration], self.spool / f"iteration-{iteration}"
            try:
                meta = json.loads(stem.with_suffix(".json").read_text(encoding="utf-8"))
                pcm = stem.with_suffix(".pcm").read_bytes()
                soundfile.write(self.folder / wav_name(iteration),
                                np.frombuffer(pcm[:len(pcm) // 2 * 2], dtype="<i2"), meta["rate"], subtype="PCM_16")
            except (OSError, ValueError, RuntimeError) as exc:
                log.warning("the reply of iteration %s could not be kept: %s", iteration, exc)
                continue
            entries.append({
                "iteration": iteration, "wav": wav_name(iteration), "clip": meta["clip"], "role": roles[iteration],
                "rate": meta["rate"], "first_response_ms": sample.first_response_ms,
                "first_audible_ms": sample.first_audible_ms, "leading_silence_ms": sample.leading_silence_ms,
                "chunk_arrival_ns": meta["chunk_arrival_ns"], "chunk_bytes": meta["chunk_bytes"],
                "chunks_when_judged": meta.get("chunks_when_judged")})
        index = {"schema": INDEX_SCHEMA, "keep": self.keep, "audible_dbfs": audible_dbfs,
                 "recorded": len(by_iteration), "replies": entries}
        (self.folder / INDEX_FILE).write_text(json.dumps(index, indent=1) + "\n", encoding="utf-8")
        shutil.rmtree(self.spool, ignore_errors=True)
        return entries


def read_index(folder: str | Path) -> dict[str, Any] | None:
    """A run folder's ``replies/index.json``, or None when it has none (or it cannot be read)."""
    path = Path(folder) / REPLIES_DIR / INDEX_FILE
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return index if isinstance(index, dict) and isinstance(index.get("replies"), list) else None
