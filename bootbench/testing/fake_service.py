"""A scripted fake service: a tiny WebSocket server in this process that plays a :class:`~.script.Script`.

    with FakeService(OpenAIRealtimeScript(), "server_error") as service:
        driver = OpenAIRealtimeDriver(DriverConfig(url=service.url, api_key="k"), clip)
        ...                                   # the driver meets the service's error once its input went quiet
        service.events                        # what the service did: ["open", "start", "ready", "input", ...]

Every path is served (``/{anything}``): the driver picks its own. The scenario
decides what the service does at each point of the session (see
:data:`SCENARIOS`): a clean answer, a refusal of the key, its own error, a
dropped connection (TCP closed, no close frame), or silence.
"""

from __future__ import annotations

import asyncio
import logging
import math
import struct
from collections.abc import Iterable
from types import TracebackType

from aiohttp import WSMsgType, web

from .loop_thread import LoopThread
from .script import Close, Frame, HttpReply, HttpRequest, Pause, Script, Send

log = logging.getLogger("bootbench.testing")

SCENARIOS = ("stamp_order", "turns", "refused_auth", "closed_socket", "server_error", "session_timeout",
             "audio_timeout")
"""What the fake service does, per scenario:

- ``stamp_order``, ``turns``: ready at the start frame, an answer each time the input goes quiet;
- ``refused_auth``: the key refused (:meth:`Script.refuse_auth`);
- ``closed_socket``: ready, then the TCP connection closed without a close frame once the input went quiet;
- ``server_error``: ready, then :meth:`Script.error` once the input went quiet;
- ``session_timeout``: the start frame never answered;
- ``audio_timeout``: ready, and the input never answered.
"""
QUIET_S = 0.05
"""How long the client's input must pause before the service takes it as over."""
CLOSE_TIMEOUT_S = 1.0
"""How long the service waits for the client's close frame after its own."""
ANSWER_MS = 200
ANSWER_HZ = 440.0
ANSWER_DBFS = -10.0


def answer_pcm(rate: int, ms: int = ANSWER_MS) -> bytes:
    """A loud tone of ``ms`` at ``rate`` as PCM16 LE: audible from its first sample."""
    amplitude = 32767 * 10 ** (ANSWER_DBFS / 20)
    count = rate * ms // 1000
    return struct.pack(f"<{count}h", *(int(amplitude * math.sin(2 * math.pi * ANSWER_HZ * i / rate))
                                       for i in range(count)))


class FakeService:
    """A WebSocket server on 127.0.0.1 playing ``script`` under ``scenario``; a context manager."""

    def __init__(self, script: Script, scenario: str) -> None:
        if scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}; one of {', '.join(SCENARIOS)}")
        self.script = script
        self.scenario = scenario
        self.events: list[str] = []
        """What the service did, in order (``open``, ``start``, ``ready``, ``input``, ``answer``, ...)."""
        self.url = ""
        """``http://127.0.0.1:PORT``: the host a driver is configured with."""
        self._loop = LoopThread()
        self._runner: web.AppRunner | None = None
        self._sockets: set[web.WebSocketResponse] = set()

    def __enter__(self) -> FakeService:
        self._loop.__enter__()
        port = self._loop.run(self._start())
        self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        try:
            self._loop.run(self._stop())
        finally:
            self._loop.__exit__(kind, error, trace)

    async def _start(self) -> int:
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        return self._runner.addresses[0][1]

    async def _stop(self) -> None:
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        upgrade = request.method == "GET" and request.headers.get("Upgrade", "").lower() == "websocket"
        self.events.append("upgrade" if upgrade else f"{request.method} {request.path}")
        if self.scenario == "refused_auth":
            refusal = self.script.refuse_auth()
            if isinstance(refusal, HttpReply):
                self.events.append("refused")
                return _response(refusal)
        if not upgrade:
            body = await request.read()
            base = f"ws://{request.host}"
            reply = self.script.http(HttpRequest(request.method, request.path, dict(request.query),
                                                 dict(request.headers), body, base))
            return _response(reply or HttpReply(404, {"error": f"the script has no {request.method} {request.path}"}))
        ws = web.WebSocketResponse(protocols=self.script.subprotocols, max_msg_size=0, timeout=CLOSE_TIMEOUT_S)
        await ws.prepare(request)
        self._sockets.add(ws)
        self.events.append("open")
        session = _Session(self, ws, request)
        try:
            await session.send(self.script.opened())
            if self.script.session_starts_on_open:
                await session.start(None)
            async for message in ws:
                if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    await session.receive(Frame(message.data))
                elif message.type is WSMsgType.ERROR:
                    break
        finally:
            session.cancel()
            self._sockets.discard(ws)
            self.events.append("closed")
        return ws


class _Session:
    """One connection's state: started, ready, the timer that notices the input's end."""

    def __init__(self, service: FakeService, ws: web.WebSocketResponse, request: web.Request) -> None:
        self.service = service
        self.script = service.script
        self.ws = ws
        self.request = request
        self.started = self.ready = False
        self._quiet: asyncio.TimerHandle | None = None

    async def receive(self, frame: Frame) -> None:
        if not self.started and not self.script.session_starts_on_open and self.script.starts_session(frame):
            await self.start(frame)
            return
        service = self.service
        replies = self.script.respond(frame)
        if replies is not None:
            await self.send(replies)
            return
        if self.ready:
            if not service.events or service.events[-1] != "input":
                service.events.append("input")
            self.cancel()
            self._quiet = asyncio.get_running_loop().call_later(QUIET_S, self._input_over)

    async def start(self, frame: Frame | None) -> None:
        """The session starts (its start frame arrived, or the socket opened): ready, refused, or nothing."""
        service, scenario = self.service, self.service.scenario
        self.started = True
        service.events.append("start")
        if scenario == "refused_auth":
            service.events.append("refused")
            await self.send(self.script.refuse_auth())  # not an HttpReply: refused in-band
        elif scenario != "session_timeout":
            await self.send(self.script.ready(frame))
            self.ready = True
            service.events.append("ready")

    def _input_over(self) -> None:
        asyncio.ensure_future(self._act())

    async def _act(self) -> None:
        service, scenario = self.service, self.service.scenario
        if scenario in ("stamp_order", "turns"):
            service.events.append("answer")
            await self.send(self.script.answer(answer_pcm(self.script.answer_rate)))
        elif scenario == "server_error":
            service.events.append("error")
            await self.send(self.script.error())
        elif scenario == "closed_socket":
            service.events.append("dropped")
            transport = self.request.transport
            if transport is not None:
                transport.abort()  # TCP closed without a WebSocket close frame
        else:
            service.events.append("silent")

    def cancel(self) -> None:
        if self._quiet is not None:
            self._quiet.cancel()
            self._quiet = None

    async def send(self, replies: HttpReply | Iterable[Send]) -> None:
        if isinstance(replies, HttpReply):
            raise TypeError("an HttpReply refuses a request; in a session, send frames or a Close")
        for reply in replies:
            if self.ws.closed:
                return
            if isinstance(reply, Close):
                await self.ws.close(code=reply.code, message=reply.reason.encode("utf-8"))
                return
            if isinstance(reply, Pause):
                await asyncio.sleep(reply.ms / 1000)
                continue
            if isinstance(reply, bytes):
                await self.ws.send_bytes(reply)
            elif isinstance(reply, str):
                await self.ws.send_str(reply)
            else:
                await self.ws.send_json(reply)


def _response(reply: HttpReply) -> web.Response:
    if isinstance(reply.body, (dict, list)):
        return web.json_response(reply.body, status=reply.status, headers=dict(reply.headers))
    return web.Response(status=reply.status, text=str(reply.body), headers=dict(reply.headers))
