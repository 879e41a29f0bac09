"""Plain network facts about a service URL: what of it may be shown, and why nothing answers there.

:func:`redacted_url` is the URL as bootbench writes it into messages and
result files (keys can hide in a query string or in credentials);
:func:`diagnose_unreachable` says in a few words why a driver could not open
its transport, found with a plain TCP (and TLS) connect.
"""

from __future__ import annotations

import socket
import ssl
from urllib.parse import urlsplit


def redacted_url(url: str) -> str:
    """``url`` without query string, fragment or credentials (keys can hide there), for messages and files.

    An IPv6 host keeps its brackets: ``http://[::1]:8770/x?key=k`` gives ``http://[::1]:8770/x``.
    """
    parsed = urlsplit(url)
    host = parsed.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parsed.port
    except ValueError:  # a port that is not a number: show none rather than fail while reporting
        port = None
    return f"{parsed.scheme}://{host}{f':{port}' if port else ''}{parsed.path}"


def diagnose_unreachable(url: str, ca_bundle: str = "", timeout: float = 3.0) -> str:
    """Why no transport could be opened to ``url``, found with a plain TCP (and TLS) connect."""
    parsed = urlsplit(url)
    secure = parsed.scheme in ("https", "wss")
    port = parsed.port or (443 if secure else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout) as sock:
            if secure:
                context = ssl.create_default_context(cafile=ca_bundle or None)
                with context.wrap_socket(sock, server_hostname=parsed.hostname):
                    pass
    except socket.gaierror:
        return "unknown host"
    except ConnectionRefusedError:
        return "connection refused"
    except TimeoutError:
        return "connection timed out"
    except ssl.SSLCertVerificationError as exc:
        return f"TLS certificate verification failed ({exc.verify_message})"
    except ssl.SSLError as exc:
        return f"TLS handshake failed ({exc.reason or exc})"
    except OSError as exc:
        return (exc.strerror or str(exc)).lower()
    return "the server accepted the connection but the WebSocket handshake failed"
