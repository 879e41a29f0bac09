"""``bootbench verify FOLDER``: the audio cross-check of a run's recorded replies (``--record-replies``).

For every reply in ``replies/index.json`` it decodes the WAV file (soundfile), and recomputes where the reply
became audible without the live detector (:mod:`bootbench.audible`): the energy envelope of the whole file,
the sum of squares over the 10 ms window ending at each sample, as one linear filter over the file
(``scipy.signal.lfilter``, not the detector's running sums chunk by chunk), the first sample whose window
level exceeds the run's ``--audible-dbfs``; then its play time under the playback model, replayed from the
recorded arrival offsets of the chunks (each chunk plays at its arrival or when the one before has finished,
whichever is later). That gives ``leading_silence_ms`` (first chunk's arrival to that play time) and
``first_audible_ms`` (the live ``first_response_ms`` plus it). Each iteration's difference from the live
figures is printed; one that differs by more than the tolerance, a reply that is empty or does not decode,
or a reply audible by one method and not the other, disagrees: exit 3 (like a failed ``--check``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bootbench.checks import CHECK_FAILED_EXIT
from bootbench.errors import UserError
from bootbench.replies import INDEX_FILE, REPLIES_DIR, read_index
from bootbench.views.load import METRICS_FILE, RUN_FILE

DEFAULT_TOLERANCE_MS = 2.0
"""The live detector and this check follow one definition, so they differ by rounding only (well under 0.1 ms);
2 ms leaves room for a reply cut into odd-sized chunks and is far below any edit worth catching (a 10 ms shift)."""
WINDOW_MS = 10.0
"""The level's window, as the definition of first_audible has it (docs/architecture.md, timing definitions)."""


class VerifyError(UserError, ValueError):
    """A folder verify cannot check (not a run folder, no recorded replies): one sentence, exit 2."""


@dataclass(frozen=True)
class Verdict:
    """One recorded reply checked against its live figures."""

    iteration: int
    clip: str
    role: str
    live_audible_ms: float | None
    audible_ms: float | None
    live_silence_ms: float | None
    silence_ms: float | None
    problem: str = ""
    """Why the reply could not be checked (empty, does not decode), or empty."""
    late: bool = False
    """The recording becomes audible only in a chunk that arrived after the cycle stopped waiting for it (the
    live figure is rightly none: the caller was no longer listening)."""

    def differences(self) -> tuple[float | None, float | None]:
        return _difference(self.audible_ms, self.live_audible_ms), _difference(self.silence_ms, self.live_silence_ms)

    def disagrees(self, tolerance_ms: float) -> str:
        """Why this reply disagrees with its live figures by more than ``tolerance_ms``; empty when it agrees."""
        if self.problem:
            return self.problem
        if self.late and self.live_audible_ms is None:
            return ""
        for name, live, here in (("first_audible_ms", self.live_audible_ms, self.audible_ms),
                                 ("leading_silence_ms", self.live_silence_ms, self.silence_ms)):
            if (live is None) != (here is None):
                return f"{name} is {_ms(live)} live but {_ms(here)} in the recording"
            if live is not None and here is not None and abs(here - live) > tolerance_ms:
                return f"{name} differs by {here - live:+.2f} ms"
        return ""


def _difference(here: float | None, live: float | None) -> float | None:
    return None if here is None or live is None else here - live


def _ms(value: float | None) -> str:
    return "none (never audible)" if value is None else f"{value:.2f}"


def onset(pcm: Any, rate: int, audible_dbfs: float) -> int | None:
    """Index of the first sample whose 10 ms window (ending at it) is above ``audible_dbfs``; None if none is.

    ``pcm`` holds the samples as floats of full scale 1.0 (soundfile's reading of PCM16: a sample / 32768).
    """
    import numpy as np
    from scipy.signal import lfilter

    window = max(1, round(WINDOW_MS * rate / 1000))
    power = np.asarray(pcm, dtype=np.float64) ** 2
    envelope = lfilter(np.full(window, 1.0 / window), [1.0], power)   # mean power of the window ending at n
    threshold = 10 ** (audible_dbfs / 10)
    above = np.flatnonzero(envelope > threshold)
    return int(above[0]) if above.size else None


def play_time_ns(sample: int, rate: int, arrivals_ns: list[int], sizes: list[int]) -> tuple[int, int] | None:
    """The play time (ns after the first chunk's arrival) of sample ``sample`` under the playback model, and the
    index of the chunk it came in.

    Chunk boundaries are whole samples of the bytes so far (an odd byte waits for the next chunk); a chunk
    without a whole sample changes nothing; the first chunk plays at its arrival, each next one at its arrival
    or when the previous has played out, whichever is later.
    """
    start, played_until, total_bytes = 0, None, 0
    for chunk, (arrival, size) in enumerate(zip(arrivals_ns, sizes)):
        total_bytes += size
        end = total_bytes // 2
        if end == start:
            continue
        plays = arrival if played_until is None else max(arrival, played_until)
        if sample < end:
            return plays + round((sample - start) * 1e9 / rate), chunk
        played_until = plays + round((end - start) * 1e9 / rate)
        start = end
    return None


def check_reply(folder: Path, entry: dict[str, Any], audible_dbfs: float) -> Verdict:
    """Decode one recorded reply and recompute its audible start."""
    import soundfile

    live = {key: entry.get(key) for key in ("first_response_ms", "first_audible_ms", "leading_silence_ms")}
    base = dict(iteration=int(entry["iteration"]), clip=str(entry.get("clip", "")), role=str(entry.get("role", "")),
                live_audible_ms=live["first_audible_ms"], live_silence_ms=live["leading_silence_ms"])
    path = folder / REPLIES_DIR / str(entry.get("wav", ""))
    try:
        pcm, rate = soundfile.read(path, dtype="float64", always_2d=False)
    except (OSError, RuntimeError, soundfile.LibsndfileError) as exc:
        return Verdict(**base, audible_ms=None, silence_ms=None, problem=f"{path.name} does not decode ({exc})")
    if getattr(pcm, "ndim", 1) > 1:
        pcm = pcm[:, 0]
    if len(pcm) == 0:
        return Verdict(**base, audible_ms=None, silence_ms=None, problem=f"{path.name} is empty")
    index = onset(pcm, rate, audible_dbfs)
    played = None if index is None else play_time_ns(index, rate, list(entry.get("chunk_arrival_ns", [])),
                                                      list(entry.get("chunk_bytes", [])))
    if index is not None and played is None:
        return Verdict(**base, audible_ms=None, silence_ms=None,
                       problem=f"{path.name} holds more audio than its chunk table in {INDEX_FILE} says")
    silence = None if played is None else played[0] / 1e6
    judged = entry.get("chunks_when_judged")
    late = played is not None and isinstance(judged, int) and played[1] >= judged
    first_response = live["first_response_ms"]
    audible = None if silence is None or first_response is None else first_response + silence
    return Verdict(**base, audible_ms=audible, silence_ms=silence, late=late)


def verify(folder: str | Path) -> tuple[list[Verdict], dict[str, Any]]:
    """Every recorded reply of a run folder checked; :class:`VerifyError` for a folder without any."""
    folder = Path(folder)
    if not folder.is_dir():
        raise VerifyError(f"{folder} is not a folder (expected a bootbench result folder)")
    if not (folder / METRICS_FILE).is_file() and not (folder / RUN_FILE).is_file():
        raise VerifyError(f"{folder} is not a bootbench result folder (it has no {METRICS_FILE} or {RUN_FILE})")
    index = read_index(folder)
    if index is None or not index["replies"]:
        raise VerifyError(f"{folder} has no recorded replies (replies/{INDEX_FILE}); record them with "
                          f"--record-replies N or all")
    audible_dbfs = float(index.get("audible_dbfs", -50.0))
    return [check_reply(folder, entry, audible_dbfs) for entry in index["replies"]], index


def text_report(verdicts: list[Verdict], tolerance_ms: float) -> tuple[str, list[Verdict]]:
    """The per-iteration table and the closing sentence; the verdicts that disagree."""
    lines = [f"{'iteration':>9}  {'role':<8} {'clip':<16} {'first_audible live':>18} {'recomputed':>10} "
             f"{'diff':>7}  {'leading_silence live':>20} {'recomputed':>10} {'diff':>7}  verdict"]
    failed = []
    for verdict in verdicts:
        audible_diff, silence_diff = verdict.differences()
        why = verdict.disagrees(tolerance_ms)
        if why:
            failed.append(verdict)
        lines.append(f"{verdict.iteration:>9}  {verdict.role:<8} {verdict.clip[:16]:<16} "
                     f"{_cell(verdict.live_audible_ms):>18} {_cell(verdict.audible_ms):>10} {_cell(audible_diff, True):>7}  "
                     f"{_cell(verdict.live_silence_ms):>20} {_cell(verdict.silence_ms):>10} {_cell(silence_diff, True):>7}  "
                     f"{'DISAGREES: ' + why if why else 'ok'}"
                     f"{' (audible only after the cycle stopped waiting)' if verdict.late and not why else ''}")
    if failed:
        lines.append(f"{len(failed)} of {len(verdicts)} recorded replies disagree with the live figures by more than "
                     f"{tolerance_ms:g} ms: iteration{'s' if len(failed) > 1 else ''} "
                     f"{', '.join(str(v.iteration) for v in failed)}")
    else:
        lines.append(f"all {len(verdicts)} recorded replies agree with the live figures within {tolerance_ms:g} ms")
    return "\n".join(lines), failed


def _cell(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    if abs(value) < 0.005:  # a difference that rounds to zero reads +0.00, never -0.00
        value = 0.0
    return f"{value:+.2f}" if signed else f"{value:.2f}"


def tolerance(text: str) -> float:
    """``--tolerance-ms``: a finite number of ms, 0 or more; :class:`VerifyError` otherwise."""
    try:
        value = float(text)
    except ValueError:
        raise VerifyError(f"--tolerance-ms must be a number of milliseconds, not {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise VerifyError(f"--tolerance-ms must be a finite number of milliseconds, 0 or more, not {text}")
    return value


def run(folder: str | Path, tolerance_ms: float) -> int:
    """Print the check of ``folder``'s recorded replies; the exit code (0 all agree, 3 one disagrees)."""
    verdicts, _index = verify(folder)
    text, failed = text_report(verdicts, tolerance_ms)
    print(text)
    return CHECK_FAILED_EXIT if failed else 0
