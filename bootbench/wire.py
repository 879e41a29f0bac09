"""Protocol constants the drivers (bootbench/providers/) and the reference server (bootbench/server/) share.

One value, one place: a driver and the server that emulates its service read
the same paths, rates and thresholds from here. Importing this module costs
nothing (no dependencies), so the server's lightweight checks can use it too.
"""

# ---- Aivoco (Socket.IO, docs/protocols/aivoco.md)
AIVOCO_SOCKETIO_PATH = "/socket.io/"
AIVOCO_INPUT_RATE = 16_000
"""Sample rate (Hz) of the PCM16 the client sends in ``audio_data``."""
AIVOCO_OUTPUT_RATE = 24_000
"""Sample rate (Hz) of the PCM16 the service sends in ``audio_response``."""

# ---- OpenAI Realtime (raw WebSocket, docs/protocols/openai-realtime.md)
OPENAI_REALTIME_PATH = "/v1/realtime"
OPENAI_AUDIO_RATE = 24_000
"""Sample rate (Hz) of ``audio/pcm`` both ways."""

# ---- Gemini Live (raw WebSocket, docs/protocols/gemini-live.md)
GEMINI_LIVE_PATH = "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
GEMINI_INPUT_RATE = 16_000
GEMINI_OUTPUT_RATE = 24_000

# ---- ElevenLabs Agents (raw WebSocket, docs/protocols/elevenlabs.md)
ELEVENLABS_CONVERSATION_PATH = "/v1/convai/conversation"
ELEVENLABS_SIGNED_URL_PATH = "/v1/convai/conversation/get-signed-url"
"""The REST request (``xi-api-key`` header) that returns a private agent's ``signed_url``."""
ELEVENLABS_INPUT_FORMATS = {"pcm_8000": 8_000, "pcm_16000": 16_000, "pcm_22050": 22_050, "pcm_24000": 24_000,
                            "pcm_44100": 44_100, "pcm_48000": 48_000}
"""The agent's ``user_input_audio_format`` values bootbench can send (PCM16 at that rate; ``ulaw_8000`` it cannot)."""
ELEVENLABS_DEFAULT_INPUT_FORMAT = "pcm_16000"
ELEVENLABS_REFERENCE_AGENT = "agent_bootbench_reference"
"""The agent id the driver names when none is given (the embedded or a local reference server, which takes any)."""
# ---- Ultravox (a call created over HTTPS, joined over a raw WebSocket; docs/protocols/ultravox.md)
ULTRAVOX_CALLS_PATH = "/api/calls"
"""``POST`` here (the REST base, ``https://api.ultravox.ai``) creates a call; its ``joinUrl`` is joined."""
ULTRAVOX_INPUT_RATE = 16_000
"""Sample rate (Hz) bootbench asks for the raw PCM16 it sends (``medium.serverWebSocket.inputSampleRate``)."""
ULTRAVOX_OUTPUT_RATE = 24_000
"""Sample rate (Hz) bootbench asks for the agent's raw PCM16 (``outputSampleRate``)."""
ULTRAVOX_TURN_END_MS = 384
"""The service's default ``vadSettings.turnEndpointDelay`` (0.384 s, 12 VAD frames of 32 ms): trailing silence
after speech that ends the user's turn. The reference server uses the call's own value, this one by default."""
# ---- Deepgram Voice Agent (raw WebSocket, binary audio, docs/protocols/deepgram.md)
DEEPGRAM_AGENT_PATH = "/v1/agent/converse"
DEEPGRAM_INPUT_RATE = 16_000
"""Sample rate (Hz) of the linear16 the client sends in binary frames (``Settings.audio.input``)."""
DEEPGRAM_OUTPUT_RATE = 24_000
"""Sample rate (Hz) of the linear16 the agent sends in binary frames (``Settings.audio.output``)."""
DEEPGRAM_KEEPALIVE_S = 8.0
"""Seconds without a client message after which the driver sends ``KeepAlive`` (Deepgram: "every 8 seconds")."""
DEEPGRAM_IDLE_TIMEOUT_S = 10.0
"""Seconds without a client message after which the reference server ends a session with
``CLIENT_MESSAGE_TIMEOUT`` (the service's timeout is not documented: the emulation's own choice)."""

# ---- turn detection, every protocol
VAD_SILENCE_MS = 500
"""Trailing silence (ms) after speech that ends the user's turn under server VAD (OpenAI's default
``silence_duration_ms``, which the OpenAI driver asks for; the reference server uses it for every protocol)."""
SILENCE_THRESHOLD = 0.01
"""Peak (``max |sample| / 32768``) at or below which audio is silence: Aivoco's ``has_audio`` is
``peak > SILENCE_THRESHOLD``, and the reference server's turn detection counts louder samples as speech."""

# ---- Azure: Voice Live and Azure OpenAI Realtime (OpenAI Realtime events, docs/protocols/azure.md)
AZURE_VOICE_LIVE_PATH = "/voice-live/realtime"
AZURE_VOICE_LIVE_API_VERSION = "2026-07-15"
"""Voice Live's GA API version (azure-ai-voicelive 1.3.0's default, 2026-08-03); required in the query."""
AZURE_OPENAI_PATH = "/openai/v1/realtime"
"""Azure OpenAI's GA endpoint (``?model=<deployment>``, no ``api-version``)."""
AZURE_OPENAI_PREVIEW_PATH = "/openai/realtime"
AZURE_OPENAI_PREVIEW_API_VERSION = "2025-04-01-preview"
"""The preview endpoint's last API version (``?api-version=...&deployment=...``); deprecated since 2026-04-30."""

# ---- xAI Grok Voice Agent (OpenAI Realtime GA events at OPENAI_REALTIME_PATH, docs/protocols/xai.md)
XAI_MODEL_PREFIX = "grok-"
"""Every xAI voice model's name starts so; the reference server serves xAI's flavour of ``/v1/realtime`` to them."""
