"""What importing bootbench costs: the heavy libraries are imported where they are used.

A refused run (bad input, exit 2) and a worker import the locustfile's
modules and nothing that writes CSV files (pandas), tests a regression
(scipy), draws (matplotlib) or decodes and resamples audio files
(soundfile, soxr). Each check runs in a fresh interpreter, so what this
test session imported before does not matter.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("pandas", "scipy", "matplotlib", "soundfile", "soxr")

LOADED_AFTER = """
{imports}
import sys
print(" ".join(sorted(name for name in {heavy!r} if name in sys.modules)))
"""


def heavy_modules_after(imports: str) -> list[str]:
    """The :data:`HEAVY` libraries a fresh interpreter holds after running ``imports``."""
    script = LOADED_AFTER.format(imports=imports, heavy=HEAVY)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


@pytest.mark.parametrize("imports", [
    "import bootbench.events, bootbench.options",  # what a refused run has imported when it exits 2
    "import bootbench.events, bootbench.options, bootbench.user",  # a worker's locustfile
    "import bootbench.views.cli",  # the bootbench command, before it knows which command
])
def test_importing_bootbench_imports_no_heavy_library(imports):
    assert heavy_modules_after(imports) == []


@pytest.mark.slow
def test_the_control_each_heavy_library_is_imported_once_used():
    """The check can tell: a summary, a comparison, a plot and a decoded, resampled file import what they need."""
    loaded = heavy_modules_after(
        "import bootbench.events\n"
        "from bootbench.audio import SPEECH_CLIP, Stimulus\n"
        "from bootbench.exporters import samples_frame\n"
        "from bootbench.views.plots import histogram_svg\n"
        "from bootbench.views.regression import compare_phase\n"
        "assert Stimulus.from_file(SPEECH_CLIP, 24_000).rate == 24_000\n"
        "assert compare_phase('x', [1.0, 2.0, 3.0], [2.0, 3.0, 4.0], resamples=10).p_value > 0\n"
        "assert histogram_svg([1.0, 2.0, 3.0], median=2.0, p95=3.0, p99=3.0).startswith('<svg')\n"
        "assert samples_frame([]).empty\n")
    assert loaded == sorted(HEAVY)


def test_a_locust_process_skips_the_final_collection_at_exit_and_registers_it_once():
    """``lifecycle.spare_final_collection`` (from every init): gc.freeze runs at exit, once however many inits, and
    before the handlers registered earlier (logging.shutdown among them), which still run."""
    script = (
        "import atexit, gc\n"
        "atexit.register(lambda: print('frozen' if gc.get_freeze_count() else 'not frozen'))\n"
        "freeze, calls = gc.freeze, []\n"
        "gc.freeze = lambda: calls.append(1) or freeze()\n"
        "atexit.register(lambda: print(len(calls), 'call(s)'))\n"
        "from bootbench.run import lifecycle\n"
        "lifecycle.spare_final_collection()\n"
        "lifecycle.spare_final_collection()\n"
        "assert gc.get_freeze_count() == 0\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["1 call(s)", "frozen"]
