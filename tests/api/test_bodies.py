"""Request bodies on a real socket: a write's token is checked before its body is read, and a
body is read with a running count, whether it says its length or comes chunked."""
from __future__ import annotations

import socket
import time

from metalearn.api.gate import MAX_BODY
from metalearn.registry import Store
from tests.api.conftest import TOKEN


def _head(host: str, port: int, *, token: str | None, extra: str = "Transfer-Encoding: chunked") -> socket.socket:
    """A connection that has sent a POST /runs's headers and nothing of its body."""
    sock = socket.create_connection((host, port), timeout=10)
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    sock.sendall(f"POST /runs HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n{auth}"
                 f"{extra}\r\n\r\n".encode())
    return sock


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def _status(sock: socket.socket, timeout: float = 10) -> int:
    """The status of the response, read before the request's body has ended."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n" not in data:
        part = sock.recv(4096)
        assert part, f"connection closed with no response: {data!r}"
        data += part
    return int(data.split(b" ", 2)[1])


def test_a_write_without_token_is_refused_before_its_body_is_read(live_app: tuple[str, int]) -> None:
    """The body never ends: the answer must come from the headers alone."""
    for extra in ("Transfer-Encoding: chunked", f"Content-Length: {MAX_BODY}"):
        with _head(*live_app, token=None, extra=extra) as sock:
            if "chunked" in extra:
                sock.sendall(_chunk(b" " * 65536))
            assert _status(sock) == 401
        with _head(*live_app, token="wrong", extra=extra) as sock:
            assert _status(sock) == 401


def test_a_chunked_body_over_the_limit_is_413_once_it_passes_it(live_app: tuple[str, int], store: Store) -> None:
    with _head(*live_app, token=TOKEN) as sock:
        sent, started = 0, time.monotonic()
        while sent <= MAX_BODY:
            sock.sendall(_chunk(b" " * 16384))
            sent += 16384
        assert _status(sock) == 413  # the terminating chunk was never sent
        assert time.monotonic() - started < 10
    assert store.list_attempts() == []


def test_a_chunked_body_within_the_limit_is_read(live_app: tuple[str, int], store: Store) -> None:
    body = b'{"experiment": "reptile_amazon", "overrides": ["debug=fast"]}'
    with _head(*live_app, token=TOKEN) as sock:
        sock.sendall(_chunk(body[:20]) + _chunk(body[20:]) + b"0\r\n\r\n")
        assert _status(sock, timeout=60) == 202
    assert [a["experiment"] for a in store.list_attempts()] == ["reptile_amazon"]
