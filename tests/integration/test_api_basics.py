"""Health, unknown routes, authentication and nginx's own JSON errors,
through the real nginx in front of demix-fcgi."""

import os
import signal
import socket
import subprocess

import pytest

from conftest import ROOT, _wait_gone


def test_health(stack):
    r = stack.get("/health", token=None)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    doc = body.get("data", body)
    assert doc["status"] == "ok", body
    assert doc["database"] == "ok", body
    assert doc["streams"]["active"] >= 0 and doc["streams"]["limit"] == int(stack.config("fcgi_senders", 64))


def test_unknown_route_is_json_404(stack):
    for path in ("/api/no-such-thing", "/nothing/here", "/"):
        r = stack.get(path)
        assert r.status_code == 404, path
        assert r.headers["Content-Type"].startswith("application/json"), path
        body = r.json()
        assert body["code"] == "NOT_FOUND" and isinstance(body["error"], str), (path, body)


def test_no_token_is_401(stack):
    r = stack.get("/api/tracks", token=None)
    assert r.status_code == 401
    assert r.json()["code"] == "UNAUTHORIZED"


@pytest.mark.parametrize("header", [
    "Bearer dx_0000000000000000000000000000000000000000",
    "Bearer not-a-token",
    "Bearer ",
    "Basic dXNlcjpwYXNz",
    "dx_0000000000000000000000000000000000000000",
])
def test_wrong_token_is_401(stack, header):
    r = stack.get("/api/tracks", token=None, headers={"Authorization": header})
    assert r.status_code == 401, header
    assert r.json()["code"] == "UNAUTHORIZED"


def test_revoked_token_is_401(stack, token):
    tok = token()
    assert stack.get("/api/tracks", token=tok).status_code == 200
    out = stack.demix("token", "revoke", tok)
    assert "revoked" in out.stdout
    r = stack.get("/api/tracks", token=tok)
    assert r.status_code == 401
    assert r.json()["code"] == "UNAUTHORIZED"


def test_token_is_stored_hashed(stack, token):
    import hashlib
    tok = token()
    rows = stack.sql(f"SELECT token_hash, prefix FROM api_tokens WHERE prefix = '{tok[:8]}'")
    assert (hashlib.sha256(tok.encode()).hexdigest(), tok[:8]) in rows
    assert not stack.sql(f"SELECT 1 FROM api_tokens WHERE token_hash = '{tok}' OR prefix = '{tok}'")


def _raw_http(port, data, timeout=10):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        while True:
            try:
                b = s.recv(65536)
            except ConnectionResetError:
                break
            if not b:
                break
            chunks.append(b)
    return b"".join(chunks)


def test_nginx_413_is_json(stack, token):
    limit = int(stack.config("max_upload_bytes", str(200 << 20)))
    port = int(stack.config("http_port"))
    req = (f"POST /api/tracks HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token()}\r\n"
           f"Content-Type: audio/wav\r\nContent-Length: {limit + 1}\r\nConnection: close\r\n\r\n").encode()
    resp = _raw_http(port, req)
    head, _, body = resp.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), head
    assert b"Content-Type: application/json" in head
    import json
    doc = json.loads(body)
    assert doc["code"] == "PAYLOAD_TOO_LARGE"
    assert isinstance(doc["error"], str)


def test_nginx_502_is_json_when_responders_are_down(stack):
    """Stop demix-fcgi: nginx answers a JSON 502; start it again."""
    pidfile = stack.run_dir / "demix-fcgi.pid"
    pid = int(pidfile.read_text())
    os.kill(pid, signal.SIGTERM)
    assert _wait_gone(pid, 20), "demix-fcgi did not stop on SIGTERM"
    try:
        r = stack.get("/api/tracks")
        assert r.status_code == 502
        assert r.headers["Content-Type"].startswith("application/json")
        assert r.json()["code"] == "BAD_GATEWAY"
        assert stack.get("/health", token=None).status_code == 502
    finally:
        stack.ensure_up()
    assert stack.get("/health", token=None).status_code == 200


def test_concurrent_new_connections_are_all_answered(stack):
    """Bursts of parallel requests on fresh client connections after idle
    gaps: every one is answered (none waits behind idle kept-alive FastCGI
    connections until they time out, which would exceed the 10 s limit)."""
    import concurrent.futures
    import time

    import requests

    def one(_):
        return requests.get(stack.url("/health"), timeout=10).status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        for _ in range(6):
            assert list(pool.map(one, range(8))) == [200] * 8
            time.sleep(0.3)
