"""A TLS front for the reference server: wss:// on a self-signed certificate for 127.0.0.1, plain TCP behind it.

    front = TLSFront.start(server.url, tmp_path)   # front.url: https://127.0.0.1:PORT, front.cert: the CA bundle
    ...
    front.stop()

The front is its own process (asyncio streams; each chunk it reads is written at once, TCP_NODELAY both
ways), so the client under test shares no event loop with it. Run as a script it serves until killed:

    python tests/support/tls_front.py --to 127.0.0.1:8765 --cert cert.pem --key key.pem
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

LISTENING = "tls front listening on "


@dataclass
class TLSFront:
    process: subprocess.Popen
    url: str
    cert: Path

    @staticmethod
    def certificate(folder: Path) -> Path:
        """A self-signed certificate for IP 127.0.0.1 (its key next to it); the path of the certificate."""
        cert, key = folder / "front-cert.pem", folder / "front-key.pem"
        if not cert.exists():
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                            "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key),
                            "-out", str(cert)], check=True, capture_output=True)
        return cert

    @classmethod
    def start(cls, target_url: str, folder: Path, timeout: float = 10.0) -> TLSFront:
        cert = cls.certificate(folder)
        target = urlsplit(target_url)
        process = subprocess.Popen([sys.executable, __file__, "--to", f"{target.hostname}:{target.port}",
                                    "--cert", str(cert), "--key", str(cert.with_name("front-key.pem"))],
                                   stdout=subprocess.PIPE, text=True)
        deadline = time.monotonic() + timeout
        line = ""
        while time.monotonic() < deadline and not line.startswith(LISTENING):
            line = process.stdout.readline()
            if not line and process.poll() is not None:
                break
        if not line.startswith(LISTENING):
            process.kill()
            raise RuntimeError("the TLS front did not start")
        return cls(process, f"https://{line[len(LISTENING):].strip()}", cert)

    def stop(self) -> None:
        self.process.kill()
        self.process.wait(5)
        if self.process.stdout is not None:
            self.process.stdout.close()


def _nodelay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def _serve(target: tuple[str, int], context: ssl.SSLContext) -> None:
    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*target)
        except OSError:
            client_writer.close()
            return
        _nodelay(client_writer)
        _nodelay(upstream_writer)
        await asyncio.gather(_pipe(client_reader, upstream_writer), _pipe(upstream_reader, client_writer))

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    host, port = server.sockets[0].getsockname()[:2]
    print(f"{LISTENING}{host}:{port}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--to", required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    args = parser.parse_args()
    host, _, port = args.to.rpartition(":")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    asyncio.run(_serve((host, int(port)), context))
    return 0


if __name__ == "__main__":
    sys.exit(main())
