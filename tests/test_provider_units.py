"""Unit checks of the providers' shared parts: CycleError's kinds, redacted URLs, unreachable diagnoses."""

from __future__ import annotations

import json
import socket

import msgpack
import pytest

from bootbench.providers.base import CycleError
from bootbench.providers.network import diagnose_unreachable, redacted_url
from bootbench.samples import ErrorKind


def test_cycle_error_takes_an_error_kind_and_serializes_it_as_its_plain_value():
    error = CycleError(ErrorKind.AUTH_FAILED, "key sk-live-1234567890abcdef refused")
    assert error.kind is ErrorKind.AUTH_FAILED
    assert str(error).startswith("auth_failed: ")
    assert json.dumps({"error_kind": error.kind}) == '{"error_kind": "auth_failed"}'
    assert type(msgpack.unpackb(msgpack.packb(error.kind))) is str
    assert msgpack.unpackb(msgpack.packb({"error_kind": error.kind})) == {"error_kind": "auth_failed"}
    assert CycleError("disconnected", "gone").kind is ErrorKind.DISCONNECTED  # a value read back from a file


@pytest.mark.parametrize("kind, exception", [("auth_fail", ValueError), ("unknown", ValueError),
                                             (None, TypeError), (401, TypeError)])
def test_cycle_error_refuses_a_kind_that_is_not_an_error_kind(kind, exception):
    with pytest.raises(exception):
        CycleError(kind, "message")


@pytest.mark.parametrize("url, shown", [
    ("http://[::1]:8770", "http://[::1]:8770"),
    ("ws://[::1]:8770/v1/realtime?model=x&key=secret", "ws://[::1]:8770/v1/realtime"),
    ("https://[2001:db8::1]/path", "https://[2001:db8::1]/path"),
    ("wss://user:secret@api.example.com:8443/ws?key=abc#frag", "wss://api.example.com:8443/ws"),
    ("http://127.0.0.1:8770", "http://127.0.0.1:8770"),
    ("wss://sts.aivoco.on.cloud.vispark.in", "wss://sts.aivoco.on.cloud.vispark.in"),
])
def test_redacted_url_keeps_ipv6_brackets_and_drops_query_fragment_and_credentials(url, shown):
    assert redacted_url(url) == shown


def test_redacted_url_of_a_bad_port_shows_the_host_without_failing():
    assert redacted_url("http://example.com:notaport/x?k=1") == "http://example.com/x"


def test_diagnose_unreachable_names_a_refused_port_on_ipv4_and_ipv6():
    for family, host, url in ((socket.AF_INET, "127.0.0.1", "http://127.0.0.1:{}"),
                              (socket.AF_INET6, "::1", "http://[::1]:{}")):
        try:
            probe = socket.socket(family)
            probe.bind((host, 0))
        except OSError:
            continue  # no IPv6 loopback on this machine
        port = probe.getsockname()[1]
        probe.close()  # bound then closed, never listening: nothing accepts there
        assert diagnose_unreachable(url.format(port)) == "connection refused"


def test_diagnose_unreachable_says_when_tcp_works_but_the_handshake_did_not():
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        assert diagnose_unreachable(f"http://127.0.0.1:{port}") == \
            "the server accepted the connection but the WebSocket handshake failed"


def test_locust_error_table_shows_a_cycle_error_by_its_kind_and_message():
    """Issue 20 item 22: Locust keys and prints an error by its repr: the kind and message, not CycleError('...')."""
    from locust.stats import StatsError

    error = CycleError(ErrorKind.CONNECT_FAILED, "connection refused")
    assert StatsError.parse_error(error) == repr(error) == "connect_failed: connection refused"
