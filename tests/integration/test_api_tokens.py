"""API tokens through nginx: a token's last_used_at is set by its first
authenticated request, then updated at most about once a minute, and
`demix token list` shows it."""

import datetime
import hashlib
import uuid


def _last_used(stack, tok):
    h = hashlib.sha256(tok.encode()).hexdigest()
    rows = stack.sql(f"SELECT last_used_at, UTC_TIMESTAMP(3) FROM api_tokens WHERE token_hash = '{h}'")
    assert len(rows) == 1
    return rows[0]


def _ts(s):
    return datetime.datetime.strptime(s, "%Y-%m-%d %H:%M:%S.%f")


def test_last_used_at_set_and_throttled(stack, token):
    user = f"lu-{uuid.uuid4().hex[:10]}"
    tok = token(user=user, name="lastuse")
    assert _last_used(stack, tok)[0] is None
    line = [l for l in stack.demix("token", "list", "--user", user).stdout.splitlines() if tok[:8] in l]
    assert len(line) == 1 and " - " in line[0], line

    # a failed authentication does not count
    assert stack.get("/api/tracks", token=tok[:-1] + ("0" if tok[-1] != "0" else "1")).status_code == 401
    assert _last_used(stack, tok)[0] is None

    assert stack.get("/api/tracks", token=tok).status_code == 200
    used, now = _last_used(stack, tok)
    assert used is not None and abs((_ts(now) - _ts(used)).total_seconds()) < 30
    listed = stack.demix("token", "list", "--user", user).stdout
    assert used[:19] in listed, listed

    # more requests within the minute leave it alone
    for _ in range(3):
        assert stack.get("/api/processing/models", token=tok).status_code == 200
    assert _last_used(stack, tok)[0] == used

    # once it is older than a minute, the next request moves it to now
    h = hashlib.sha256(tok.encode()).hexdigest()
    stack.sql(f"UPDATE api_tokens SET last_used_at = UTC_TIMESTAMP(3) - INTERVAL 2 MINUTE WHERE token_hash = '{h}'")
    old = _last_used(stack, tok)[0]
    assert stack.get("/api/tracks", token=tok).status_code == 200
    newer, now = _last_used(stack, tok)
    assert _ts(newer) > _ts(old) and abs((_ts(now) - _ts(newer)).total_seconds()) < 30
