"""The api_auth rate limit: fixed one-minute windows per token."""

import time

import pytest


def _headers(r):
    return {k: int(r.headers[k]) for k in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")}


def test_61st_call_in_a_minute_is_429(stack, token):
    limit = int(stack.config("rate_auth_per_min", "60"))
    if limit > 1000:
        pytest.skip(f"the stack runs with rate_auth_per_min = {limit} (restart it: tools/down --var {stack.var})")
    tok = token()
    first = stack.get("/api/tracks", token=tok)
    assert first.status_code == 200, first.text
    h = _headers(first)
    assert h["X-RateLimit-Limit"] == limit
    # Make sure the whole burst fits in one window: if fewer than 10 s are
    # left, wait for the next window and start with a fresh token.
    if h["X-RateLimit-Reset"] - time.time() < 10:
        time.sleep(max(0.0, h["X-RateLimit-Reset"] - time.time()) + 1.0)
        tok = token()
        first = stack.get("/api/tracks", token=tok)
        h = _headers(first)
    assert h["X-RateLimit-Remaining"] == limit - 1
    reset = h["X-RateLimit-Reset"]
    assert 0 < reset - time.time() <= 61
    for i in range(2, limit + 1):
        r = stack.get("/api/tracks", token=tok)
        assert r.status_code == 200, (i, r.text)
        h = _headers(r)
        assert h["X-RateLimit-Remaining"] == limit - i, i
        assert h["X-RateLimit-Reset"] == reset
    r = stack.get("/api/tracks", token=tok)
    assert r.status_code == 429, r.text
    body = r.json()
    assert body["code"] == "RATE_LIMITED"
    assert isinstance(body["error"], str)
    h = _headers(r)
    assert h["X-RateLimit-Limit"] == limit and h["X-RateLimit-Remaining"] == 0 and h["X-RateLimit-Reset"] == reset
    left = reset - time.time()
    assert isinstance(body["retry_after"], int)
    assert abs(body["retry_after"] - left) <= 2 and 1 <= body["retry_after"] <= 60
    if "Retry-After" in r.headers:
        assert int(r.headers["Retry-After"]) == body["retry_after"]
    # Another token of the same kind is not affected.
    assert stack.get("/api/tracks", token=token()).status_code == 200


def test_public_health_is_not_rate_limited(stack):
    for _ in range(80):
        assert stack.get("/health", token=None).status_code == 200
