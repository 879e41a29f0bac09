"""The providers the suite parametrizes over, and the per-provider facts a test needs that no driver attribute holds.

    @pytest.mark.parametrize("provider", BUILTINS)
    def test_x(provider): ...
    wrong_key_message("openai")      # LookupError naming this file for a provider the table does not know

:data:`BUILTINS` is the provider table's own list (``providers.registry.BUILTINS``, what bootbench ships; a plugin
tests itself with :mod:`bootbench.testing`): a provider added there joins every parametrized test. What a driver
knows about itself (key variables, turn modes, default model and voice, input rate, whether it tells a greeting
from the answer) is read from its class; the rest is a small table here that fails loudly for a provider it does
not know, so a new provider's tests say what to add instead of passing without it.
"""

from __future__ import annotations

from bootbench import providers
from bootbench.providers import registry
from bootbench.providers.base import Driver

BUILTINS: tuple[str, ...] = tuple(registry.BUILTINS)
"""Every provider bootbench ships, in the table's order."""
OWN_SHARED_RUNS = {
    "elevenlabs": "tests/test_elevenlabs.py runs its own against the shared servers: its agent ends a turn after "
                  "500 ms of trailing silence only, and the caller's speech interrupts its greeting",
}
"""Providers left out of the session's shared ground-truth runs (tests/conftest.py), each with where it is run instead."""
IN_SHARED_RUNS: tuple[str, ...] = tuple(name for name in BUILTINS if name not in OWN_SHARED_RUNS)
"""The providers of the shared ground-truth runs (burst with three turns, real time with a greeting)."""
GREETING_PROVIDERS: tuple[str, ...] = tuple(name for name in IN_SHARED_RUNS
                                            if providers.get(name).tells_greeting_from_answer)
"""Providers whose driver tells a greeting from the answer at any time (``Driver.tells_greeting_from_answer``)."""
RUN_ARGS: dict[str, tuple[str, ...]] = {}
"""What a provider needs beyond ``--provider`` in every run: none today. The agents whose turns end by trailing
silence only (ElevenLabs, Ultravox) needed ``--trailing-silence-ms`` until ``--turn vad`` defaulted it from the
driver (``Driver.vad_trailing_silence_ms``); the shared runs now rely on that default."""
OTHER_TURN_MODES: tuple[tuple[str, str], ...] = tuple((name, mode) for name in BUILTINS
                                                      for mode in providers.get(name).turn_modes[1:])
"""Each provider's turn modes other than its default (the shared runs use the default)."""

WRONG_KEY_MESSAGES = {
    "aivoco": "Invalid API key",
    "openai": "HTTP 401: Incorrect API key provided",
    "gemini": "connection closed (code 1007): API key not valid. Please pass a valid API key.",
    "azure": "HTTP 401: Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a "
             "valid key for an active subscription and use a correct regional API endpoint for your resource.",
    "xai": "HTTP 400: Incorrect API key provided. You can obtain an API key from https://console.x.ai.",
    "elevenlabs": "HTTP 401 from the signed-URL request: invalid_api_key: Invalid API key",
    "ultravox": "the call could not be created: HTTP 401: Invalid API key.",
    "deepgram": "HTTP 401: INVALID_AUTH: Invalid credentials.",
}
"""The error message a run records when the reference server refuses the key, in the service's words."""


def driver(name: str) -> type[Driver]:
    """The driver class of provider ``name``."""
    return providers.get(name)


def key_variable(name: str) -> str:
    """The variable a test sets for provider ``name``'s key (its first)."""
    return providers.get(name).key_variables[0]


def wrong_key_message(name: str) -> str:
    """What a run of ``name`` records when the reference server refuses its key."""
    return _fact(WRONG_KEY_MESSAGES, name, "WRONG_KEY_MESSAGES", "the message of a refused key")


def _fact(table: dict[str, str], name: str, table_name: str, what: str) -> str:
    try:
        return table[name]
    except KeyError:
        raise LookupError(f"tests/support/provider_table.py has no {what} for the provider {name!r}: add it to "
                          f"{table_name}") from None
