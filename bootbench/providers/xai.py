"""xAI's Grok Voice Agent: the OpenAI Realtime driver at ``wss://api.x.ai/v1/realtime`` (docs/protocols/xai.md).

    XAI_API_KEY=... locust --provider xai                    # wss://api.x.ai/v1/realtime?model=grok-voice-think-fast-2.0

A configuration of :class:`~.openai_realtime.OpenAIRealtimeDriver`, not a copy:
xAI speaks OpenAI's GA event names with its own ``session.update`` layout
(``voice`` and ``turn_detection`` at the top, the formats under ``audio``:
:attr:`session_shape` ``"xai"``), refuses a bad key at the upgrade with HTTP
400 (:attr:`auth_refusal_words`), and pings with ``ping`` events that need no
answer (ignored, like every event the driver does not use). Its input transcription needs
no asking: every session sends it (the transcript stage).
"""

from __future__ import annotations

from bootbench.providers.openai_realtime import OpenAIRealtimeDriver


class XAIDriver(OpenAIRealtimeDriver):
    """xAI Grok Voice Agent: OpenAI's events, xAI's endpoint, session layout, key, model and voice."""

    name = "xai"
    known_hosts = ("api.x.ai",)
    public_url = "wss://api.x.ai/v1/realtime"
    max_message_source = "OpenAI's documented limit of input_audio_buffer.append (xAI documents none)"
    key_variables = ("XAI_API_KEY",)
    reference_protocol = "openai"  # a flavour of the OpenAI emulation (bootbench/server/protocols/openai/flavours.py)
    default_model = "grok-voice-think-fast-2.0"
    """Pinned (``grok-voice-latest`` is its alias today and will move), so runs stay comparable."""
    default_voice = "eve"
    session_shape = "xai"
    auth_refusal_words = ("Incorrect API key",)
    options = ()
    """None: xAI transcribes the caller's speech in every session (no setting asks for it or turns it off)."""
