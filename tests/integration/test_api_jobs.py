"""Jobs through nginx: a probe job runs on the stack's demixd; listing,
ownership and cancelling a queued job; users take turns at the engines; a
job's progress as server-sent events."""

import json
import os
import signal
import threading
import uuid

import pytest
import requests

from conftest import wait_job


def _data(r, status):
    assert r.status_code == status, (r.status_code, r.text[:500])
    return r.json()["data"]


def _wait_job(stack, tok, job_id, seconds=60):
    return wait_job(stack, tok, f"/api/jobs/{job_id}", seconds)


def test_probe_job_runs(stack, token, audio, upload):
    tok = token()
    t = _data(upload(tok, audio("flac", seconds=1.25, rate=48000, channels=2)), 201)
    j = _data(stack.post("/api/jobs/probe", token=tok, json={"track_id": t["id"]}), 202)
    assert j["status"] == "queued"
    done = _wait_job(stack, tok, j["job_id"])
    assert done["status"] == "completed", done
    assert done["progress"] == 100
    res = done["result"]
    assert res["sample_rate"] == 48000 and res["channels"] == 2 and res["format"] == "flac"
    assert res["duration"] == pytest.approx(1.25, abs=1e-3)
    assert res["frames"] == 60000
    listed = stack.get("/api/jobs", token=tok).json()
    assert listed["meta"]["total_count"] == 1
    assert listed["data"][0]["id"] == j["job_id"]


def test_probe_needs_an_owned_track(stack, token, audio, upload):
    owner, other = token(), token()
    t = _data(upload(owner, audio("wav", seconds=0.2)), 201)
    r = stack.post("/api/jobs/probe", token=other, json={"track_id": t["id"]})
    assert r.status_code == 404, r.text
    r = stack.post("/api/jobs/probe", token=owner, json={})
    assert r.status_code in (400, 422), r.text
    r = stack.post("/api/jobs/probe", token=owner, data=b"{nope", headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert isinstance(r.json()["code"], str)
    # a library re-read in one request: all or none, unknown fields refused
    mine = _data(upload(owner, audio("wav", seconds=0.3)), 201)
    r = stack.post("/api/jobs/probe", token=owner, json={"track_ids": [t["id"], mine["id"]]})
    assert [j["track_id"] for j in _data(r, 202)["jobs"]] == [t["id"], mine["id"]]
    theirs = _data(upload(other, audio("wav", seconds=0.3)), 201)
    r = stack.post("/api/jobs/probe", token=owner, json={"track_ids": [t["id"], theirs["id"]]})
    assert r.status_code == 404 and r.json()["details"]["track_ids"] == [theirs["id"]], r.text
    r = stack.post("/api/jobs/probe", token=owner, json={"track_id": t["id"], "deep": True})
    assert r.status_code == 422 and "deep" in r.json()["details"], r.text


def test_other_users_job_is_404(stack, token, audio, upload):
    owner, other = token(), token()
    t = _data(upload(owner, audio("wav", seconds=0.2)), 201)
    j = _data(stack.post("/api/jobs/probe", token=owner, json={"track_id": t["id"]}), 202)
    assert stack.get(f"/api/jobs/{j['job_id']}", token=other).status_code == 404
    assert stack.delete(f"/api/jobs/{j['job_id']}", token=other).status_code == 404
    assert stack.get("/api/jobs", token=other).json()["meta"]["total_count"] == 0


def test_cancel_queued_job(stack, token, audio, upload, no_stack_demixd):
    tok = token()
    t = _data(upload(tok, audio("wav", seconds=0.2)), 201)
    j = _data(stack.post("/api/jobs/probe", token=tok, json={"track_id": t["id"]}), 202)
    r = stack.delete(f"/api/jobs/{j['job_id']}", token=tok)
    assert r.status_code in (200, 202, 204), r.text
    got = _data(stack.get(f"/api/jobs/{j['job_id']}", token=tok), 200)
    assert got["status"] == "cancelled"
    row = stack.sql(f"SELECT status, cancel_requested FROM jobs WHERE id = '{j['job_id']}'")
    assert row == [("cancelled", "1")] or row[0][0] == "cancelled"


def test_users_take_turns(stack, token, audio, upload, no_stack_demixd, spawn_demixd):
    """A user's bulk request does not hold back another user's job queued
    after it: with one engine worker, the engines take one job per user per
    turn, so the second user's job runs second, not after the whole batch."""
    batch, single = token(), token()
    ids = [_data(upload(batch, audio("wav", seconds=1.0 + 0.1 * i)), 201)["id"] for i in range(4)]
    mine = _data(upload(single, audio("wav", seconds=1.0)), 201)["id"]
    jobs = _data(stack.post("/api/analysis/analyze", token=batch, json={"track_ids": ids, "features": ["tempo"]}),
                 202)["jobs"]
    assert [j["track_id"] for j in jobs] == ids
    r = stack.post("/api/analysis/analyze", token=single, json={"track_id": mine, "features": ["tempo"]})
    late = _data(r, 202)
    assert r.headers["Location"] == f"/api/analysis/job/{late['job_id']}"
    engine = spawn_demixd(args=["--workers", "1"])
    done = {}
    for tok, j in [(batch, j) for j in jobs] + [(single, late)]:
        done[j["job_id"]] = _wait_job(stack, tok, j["job_id"])
        assert done[j["job_id"]]["status"] == "completed", done[j["job_id"]]
        assert "tempo" in done[j["job_id"]]["result"]
    assert engine.poll() is None
    order = sorted(done, key=lambda k: done[k]["started_at"])
    assert order == [jobs[0]["job_id"], late["job_id"]] + [j["job_id"] for j in jobs[1:]], order
    # a batch's progress: the list filtered by kind and status
    listed = stack.get("/api/jobs?type=analyze&status=completed&page_size=100", token=batch).json()
    assert sorted(j["id"] for j in listed["data"]) == sorted(j["job_id"] for j in jobs)
    assert stack.get("/api/jobs?type=separate", token=batch).json()["meta"]["total_count"] == 0
    r = stack.get("/api/jobs?type=nope", token=batch)
    assert r.status_code == 422 and "type" in r.json()["details"], r.text


def _event_stream(stack, tok, job_id):
    """GET /api/jobs/:id/events: the response and a generator of its
    (event, data) pairs, comments and retry lines left out."""
    r = requests.get(stack.url(f"/api/jobs/{job_id}/events"), headers={"Authorization": f"Bearer {tok}"},
                     stream=True, timeout=30)

    def events():
        name, data = None, []
        for line in r.iter_lines(decode_unicode=True):
            if line == "":
                if name:
                    yield name, json.loads("\n".join(data))
                name, data = None, []
            elif line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
    return r, events()


def test_job_events_stream(stack, token, audio, upload, no_stack_demixd, spawn_demixd):
    """A job's progress as server-sent events, from queued to its end."""
    tok = token()
    t = _data(upload(tok, audio("wav", seconds=2.0)), 201)
    j = _data(stack.post("/api/analysis/analyze", token=tok, json={"track_id": t["id"]}), 202)
    r, events = _event_stream(stack, tok, j["job_id"])
    assert r.status_code == 200, r.text[:300]
    assert r.headers["Content-Type"].startswith("text/event-stream") and "Content-Length" not in r.headers
    assert r.headers["Cache-Control"] == "no-store"
    first = next(events)
    assert first == ("job", {"id": j["job_id"], "type": "analyze", "status": "queued", "progress": 0}), first
    assert stack.get("/health").json()["streams"]["active"] >= 1  # sent by a sender, not a responder
    spawn_demixd()
    seen = list(events)  # to the end of the stream
    names = [n for n, _ in seen]
    assert names[-2:] == ["job", "end"], names
    final = seen[-2][1]
    assert final["id"] == j["job_id"] and final["status"] == "completed" and final["progress"] == 100
    assert "tempo" in final["result"] and final["finished_at"]
    progress = [d["progress"] for n, d in seen[:-2]]
    assert progress == sorted(progress) and all(d["status"] == "running" for n, d in seen[:-2]), seen
    # a finished job: its last state at once; others' and unknown jobs: 404
    r, events = _event_stream(stack, tok, j["job_id"])
    assert [n for n, _ in events] == ["job", "end"]
    for who, job_id in ((token(), j["job_id"]), (tok, str(uuid.uuid4()))):
        r = stack.get(f"/api/jobs/{job_id}/events", token=who)
        assert r.status_code == 404 and r.json()["code"] == "NOT_FOUND", r.text


def test_cancel_all_of_a_kind(stack, token, audio, upload, no_stack_demixd):
    """DELETE /api/jobs[?type=]: a batch called off in one request, the
    caller's own jobs only."""
    tok, other = token(), token()
    ids = [_data(upload(tok, audio("wav", seconds=0.3 + 0.1 * i)), 201)["id"] for i in range(3)]
    jobs = _data(stack.post("/api/analysis/analyze", token=tok, json={"track_ids": ids}), 202)["jobs"]
    probe = _data(stack.post("/api/jobs/probe", token=tok, json={"track_id": ids[0]}), 202)
    theirs = _data(stack.post("/api/jobs/probe", token=other,
                              json={"track_id": _data(upload(other, audio("wav", seconds=0.3)), 201)["id"]}), 202)
    assert _data(stack.delete("/api/jobs?type=analyze", token=tok), 200) == {"cancelled": 3, "cancelling": 0}
    assert all(_data(stack.get(f"/api/jobs/{j['job_id']}", token=tok), 200)["status"] == "cancelled" for j in jobs)
    assert _data(stack.get(f"/api/jobs/{probe['job_id']}", token=tok), 200)["status"] == "queued"
    assert _data(stack.delete("/api/jobs", token=tok), 200) == {"cancelled": 1, "cancelling": 0}
    assert _data(stack.get(f"/api/jobs/{probe['job_id']}", token=tok), 200)["status"] == "cancelled"
    assert _data(stack.get(f"/api/jobs/{theirs['job_id']}", token=other), 200)["status"] == "queued"
    r = stack.delete("/api/jobs?type=everything", token=tok)
    assert r.status_code == 422 and "type" in r.json()["details"], r.text


def test_job_events_end_with_their_responder(stack, token, audio, upload, no_stack_demixd):
    """A stream outlives no demix-fcgi: stopping it ends the stream (without
    `end`, so an EventSource reconnects to the next one)."""
    tok = token()
    t = _data(upload(tok, audio("wav", seconds=0.5)), 201)
    j = _data(stack.post("/api/jobs/probe", token=tok, json={"track_id": t["id"]}), 202)
    r, events = _event_stream(stack, tok, j["job_id"])
    assert next(events)[1]["status"] == "queued"
    rest, ended = [], threading.Event()

    def drain():
        try:
            rest.extend(events)
        except requests.exceptions.RequestException:  # nginx may cut the chunked body short
            pass
        ended.set()
    threading.Thread(target=drain, daemon=True).start()
    os.kill(int((stack.run_dir / "demix-fcgi.pid").read_text()), signal.SIGTERM)
    try:
        assert ended.wait(10), "the stream outlived its demix-fcgi"
        assert all(n != "end" for n, _ in rest), rest
    finally:
        r.close()
        stack.ensure_up()
    assert stack.get("/health").status_code == 200
