"""Wire-level constants the reference server shares with bootbench (importing this module is free of dependencies)."""

API_KEY_ENV = "BOOTBENCH_SERVER_API_KEY"
LISTENING_PREFIX = "bootbench reference server listening on "

AIVOCO_SOCKETIO_PATH = "/socket.io/"
AIVOCO_INPUT_RATE = 16000
AIVOCO_OUTPUT_RATE = 24000
AIVOCO_HAS_AUDIO_THRESHOLD = 0.01
"""``has_audio`` must be ``max |sample| / 32768 > AIVOCO_HAS_AUDIO_THRESHOLD`` for the chunk."""
AIVOCO_AMPLITUDE_TOLERANCE = 0.01
"""``max_amplitude`` may differ from the chunk's ``max |sample| / 32768`` by at most this."""

OPENAI_REALTIME_PATH = "/v1/realtime"
GEMINI_LIVE_PATH = "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"

VAD_SILENCE_MS = 500
"""Trailing silence after speech that ends a user's turn when the client does not end it (OpenAI's server VAD default)."""
VAD_SPEECH_THRESHOLD = 0.01
"""A sample louder than this (``|x| / 32768``) is speech for the server's turn detection (Aivoco's has_audio threshold)."""
OPENAI_AUDIO_RATE = 24000
GEMINI_INPUT_RATE = 16000
GEMINI_OUTPUT_RATE = 24000
REPLY_AFTER = ("first-input", "end-of-turn")
"""When the Aivoco emulation starts its reply timer: at the first audio_data, or when the user's turn ends."""
