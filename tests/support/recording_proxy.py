"""A WebSocket proxy that records every frame between a client and an upstream server (test helper).

    with RecordingProxy("http://127.0.0.1:8765") as proxy:
        drive(proxy.url)                      # any path and query; headers carrying keys are passed on
        proxy.frames                          # [Frame(path, sender, binary, data), ...] in arrival order

It runs its own asyncio loop in a thread, so blocking clients (the
bootbench drivers) can use it from the test's thread. Close frames are
passed on with their code and reason; a refused upgrade is passed on as its
HTTP status and body.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

import aiohttp
from aiohttp import WSMsgType, web

FORWARDED_HEADERS = ("Authorization", "x-goog-api-key", "api-key")


@dataclass(frozen=True)
class Frame:
    """One data frame: ``sender`` is ``client`` or ``server``; ``data`` is bytes for binary frames."""

    path: str
    sender: str
    binary: bool
    data: str | bytes


class RecordingProxy:
    """Records text and binary frames in both directions; see the module docstring."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.replace("http://", "ws://", 1)
        self.frames: list[Frame] = []
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._run, name="recording-proxy", daemon=True)

    def __enter__(self) -> RecordingProxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("recording proxy did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._ready.set()
        self._loop.run_forever()

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        headers = {name: request.headers[name] for name in FORWARDED_HEADERS if name in request.headers}
        async with aiohttp.ClientSession() as session:
            try:
                upstream = await session.ws_connect(self.upstream + request.path_qs, headers=headers,
                                                    autoclose=False, max_msg_size=0)
            except aiohttp.WSServerHandshakeError as exc:
                return web.Response(status=exc.status, text=exc.message)
            client = web.WebSocketResponse(autoclose=False, max_msg_size=0)
            await client.prepare(request)
            path = request.path
            await asyncio.gather(self._pump(client, upstream, path, "client"),
                                 self._pump(upstream, client, path, "server"))
        return client

    async def _pump(self, source, target, path: str, sender: str) -> None:
        while True:
            msg = await source.receive()
            if msg.type is WSMsgType.TEXT:
                self.frames.append(Frame(path, sender, False, msg.data))
                await target.send_str(msg.data)
            elif msg.type is WSMsgType.BINARY:
                self.frames.append(Frame(path, sender, True, msg.data))
                await target.send_bytes(msg.data)
            elif msg.type is WSMsgType.CLOSE and sender == "client":
                # Pass the close on and keep relaying: the server's frames already under way come before its own
                # close (aiohttp's close() would wait for that close, dropping them, and the client never sees
                # what the server sent; tests/test_trace.py counts them). The other pump ends at the server's close.
                await target.send_frame(close_payload(msg.data, msg.extra), WSMsgType.CLOSE)
                return
            elif msg.type is WSMsgType.CLOSE:
                await target.close(code=msg.data, message=(msg.extra or "").encode())
                await source.close()
                return
            else:
                if not target.closed:
                    await target.close()
                return


def close_payload(code: int | None, reason: str | None) -> bytes:
    """A close frame's payload: the code (2 bytes, network order) and the UTF-8 reason; empty without a code."""
    return b"" if code is None else code.to_bytes(2, "big") + (reason or "").encode()
