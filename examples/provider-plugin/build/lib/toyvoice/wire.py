"""The ToyVoice protocol, as the driver and the emulation both rely on it.

    ws://HOST/toy/v1/talk                 X-Toy-Key: KEY      (a bad key: HTTP 401 {"error": "..."})
    client  {"type": "hello", "room": ROOM, "voice": VOICE}     starts the session
    server  {"type": "ready"}                                    the session is ready
    client  {"type": "audio", "pcm16": BASE64}                   16 kHz PCM16 input, any number of messages
    client  {"type": "end_of_turn"}                              the caller's turn is over
    server  {"type": "audio", "turn": N, "pcm16": BASE64}        24 kHz PCM16 reply to turn N (0: a greeting)
    server  {"type": "reply_done", "turn": N}                    the end of that reply
    server  {"type": "error", "message": TEXT}                   the service failed the session
    client  (close frame)                                        ends the session; the server's close frame answers
"""

PATH = "/toy/v1/talk"
KEY_HEADER = "X-Toy-Key"
INPUT_RATE = 16_000
OUTPUT_RATE = 24_000
GREETING_TURN = 0
"""The turn number of a reply the caller did not ask for."""
