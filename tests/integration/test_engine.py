"""Engine-level tests of demixd and the job queue, on the test stack's MariaDB.

The stack's own demixd is stopped for each test (fixture no_stack_demixd) and
the test spawns its own engines (spawn_demixd) with short polls, leases and
grace periods, so it can kill them at will. Jobs are inserted with SQL the
way dx_job_enqueue writes them, and cancelled with the statements
dx_job_cancel runs; the library functions themselves are checked by the unit
program tests/test_jobs, which test_queue_library runs against this
database. The `sleep` job type (engine/jobs/job_sleep.c) stands in for long
or flaky work.
"""
import json
import os
import signal
import socket
import subprocess
import time
import uuid

import pytest


def wait_for(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Queue:
    """SQL access to the jobs of one test user."""

    def __init__(self, stack, user_id):
        self.stack = stack
        self.user_id = user_id

    def job(self, job_id):
        rows = self.stack.sql("SELECT status, attempts, progress, error, result, lease_owner, cancel_requested"
                              f" FROM jobs WHERE id = '{job_id}'")
        assert rows, f"job {job_id} is gone"
        status, attempts, progress, error, result, owner, cancel = rows[0]
        return {"status": status, "attempts": int(attempts), "progress": int(progress), "error": error,
                "result": json.loads(result) if result else None, "owner": owner, "cancel": int(cancel)}

    def finished(self, job_id):
        j = self.job(job_id)
        return j if j["status"] not in ("queued", "running") else None

    def enqueue(self, jobs):
        """jobs: list of (type, track_id or None, params dict); inserted in one statement."""
        ids, values = [], []
        for jtype, track, params in jobs:
            jid = str(uuid.uuid4())
            ids.append(jid)
            t = f"'{track}'" if track else "NULL"
            p = json.dumps(params).replace("\\", "\\\\").replace("'", "\\'")
            values.append(f"('{jid}', '{self.user_id}', {t}, '{jtype}', '{p}', 3, UTC_TIMESTAMP(3),"
                          " UTC_TIMESTAMP(3))")
        self.stack.sql("INSERT INTO jobs (id, user_id, track_id, type, params, max_attempts, run_after, created_at)"
                       " VALUES " + ", ".join(values))
        return ids

    def cancel(self, job_id):
        """The statements dx_job_cancel runs for a queued or a running job."""
        self.stack.sql(f"UPDATE jobs SET status = 'cancelled', finished_at = UTC_TIMESTAMP(3),"
                       f" cancel_requested = 1 WHERE id = '{job_id}' AND status = 'queued';"
                       f" UPDATE jobs SET cancel_requested = 1 WHERE id = '{job_id}' AND status = 'running'")

    def add_track(self, path, rel):
        tid = str(uuid.uuid4())
        self.stack.sql("INSERT INTO tracks (id, user_id, duration, sample_rate, channels, frames, format,"
                       f" file_path, file_size) VALUES ('{tid}', '{self.user_id}', 0, 0, 0, 0, 'x', '{rel}', 0)")
        return tid


class Engine:
    """A demixd spawned for a test, with its own wake-up socket and pid file."""

    def __init__(self, stack, spawn, n, workers=2, lease=30, grace=20):
        tag = f"{os.getpid()}-{n}"
        self.sock = stack.run_dir / f"engine-test-{tag}.sock"
        self.pidfile = stack.run_dir / f"engine-test-{tag}.pid"
        env = {"DEMIX_ENGINE_SOCKET": str(self.sock), "DEMIX_POLL_MS": "100", "DEMIX_LEASE_SECONDS": str(lease),
               "DEMIX_HEARTBEAT_SECONDS": "1", "DEMIX_RETRY_BACKOFF_SECONDS": "1",
               "DEMIX_SHUTDOWN_GRACE_SECONDS": str(grace)}
        self.proc = spawn(extra_env=env, args=["--workers", workers, "--device", "cpu", "--pidfile", self.pidfile])
        self.pid = self.proc.pid
        wait_for(lambda: self.sock.exists() or self.proc.poll() is not None, 20, "demixd to bind its socket")
        assert self.proc.poll() is None, self.text()

    def wake(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            s.sendto(b"w", str(self.sock))
        except OSError:
            pass
        s.close()

    def owns(self, owner):
        return owner is not None and owner.split(":")[-2] == str(self.pid)

    def text(self):
        with open(self.proc.log_path, "rb") as f:
            f.seek(self.proc.log_start)
            return f.read().decode(errors="replace")

    def stop(self, sig=signal.SIGTERM, timeout=40):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)


@pytest.fixture
def q(stack):
    uid = str(uuid.uuid4())
    stack.sql(f"INSERT INTO users (id, name) VALUES ('{uid}', 'engine-{uid[:12]}')")
    yield Queue(stack, uid)
    stack.sql(f"DELETE FROM users WHERE id = '{uid}'")  # its jobs and tracks go with it


@pytest.fixture
def engines(stack, spawn_demixd, no_stack_demixd):
    count = [0]

    def start(**kw):
        count[0] += 1
        return Engine(stack, spawn_demixd, count[0], **kw)
    return start


@pytest.fixture
def track(stack, q, audio):
    """track(seconds, rate, channels) -> (track_id, frames): a WAV in the stack's storage."""
    made = []

    def make(seconds=0.25, rate=22050, channels=2):
        src = audio("wav", seconds=seconds, rate=rate, channels=channels, name=f"{uuid.uuid4().hex}.wav")
        rel = f"engine-test/{src.name}"
        dst = stack.storage_dir / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(src.read_bytes())
        made.append(dst)
        return q.add_track(dst, rel), int(seconds * rate)
    yield make
    for p in made:
        p.unlink(missing_ok=True)


def engine_rows(stack, e):
    return int(stack.sql(f"SELECT COUNT(*) FROM engines WHERE pid = {e.pid}")[0][0])


def test_two_engines_claim_each_job_exactly_once(stack, q, engines, track):
    tid, frames = track(0.25, 22050, 2)
    a, b = engines(workers=2), engines(workers=2)
    wait_for(lambda: engine_rows(stack, a) == 1 and engine_rows(stack, b) == 1, 10, "both engines registered")
    row = stack.sql(f"SELECT device, gpu, workers FROM engines WHERE pid = {a.pid}")[0]
    assert row == ("cpu", None, "2")
    ids = q.enqueue([("probe", tid, {})] * 40 + [("sleep", None, {"seconds": 0.1})] * 20)
    a.wake()
    b.wake()
    for jid in ids:
        wait_for(lambda: q.finished(jid), 60, f"job {jid}")
    logs = a.text() + b.text()
    pids = set()
    for jid in ids:
        j = q.job(jid)
        assert j["status"] == "completed" and j["attempts"] == 1, (jid, j)
        assert a.owns(j["owner"]) or b.owns(j["owner"]), j
        pids.add(j["owner"].split(":")[-2])
        # started once and completed once, by one engine
        lines = [line for line in logs.splitlines() if f"job {jid} (" in line]
        assert len(lines) == 2 and "started by" in lines[0] and "completed by" in lines[1], lines
        if "frames" in j["result"]:
            assert j["result"] == {"duration": pytest.approx(frames / 22050), "sample_rate": 22050,
                                   "channels": 2, "frames": frames, "format": "wav"}
        else:
            assert j["result"]["owner"] == j["owner"]
    assert pids == {str(a.pid), str(b.pid)}, "both engines should have taken part"
    row = stack.sql(f"SELECT duration, sample_rate, channels, frames, format FROM tracks WHERE id = '{tid}'")[0]
    assert float(row[0]) == pytest.approx(frames / 22050) and row[1:] == ("22050", "2", str(frames), "wav")
    assert a.stop() == 0 and b.stop() == 0
    assert engine_rows(stack, a) == 0 and engine_rows(stack, b) == 0
    assert not a.sock.exists() and not a.pidfile.exists()


def test_killed_engine_job_is_finished_by_another(q, engines):
    a = engines(workers=1, lease=2)
    (jid,) = q.enqueue([("sleep", None, {"seconds": 3})])
    a.wake()
    wait_for(lambda: a.owns(q.job(jid)["owner"]), 10, "job running on the first engine")
    time.sleep(2.5)  # longer than the lease: the keeper renews it while the job runs
    j = q.job(jid)
    assert j["status"] == "running" and a.owns(j["owner"]), j
    a.stop(signal.SIGKILL)
    b = engines(workers=1, lease=2)
    j = wait_for(lambda: q.finished(jid), 30, "job finished by the second engine")
    assert j["status"] == "completed" and j["attempts"] == 2, j
    assert b.owns(j["result"]["owner"]) and j["result"]["attempt"] == 2
    assert b.stop() == 0


def test_lapsed_lease_with_attempts_spent_fails(q, engines):
    (jid,) = q.enqueue([("sleep", None, {"seconds": 1})])
    # as left by an engine that died on the job's last attempt
    q.stack.sql("UPDATE jobs SET status = 'running', attempts = 3, lease_owner = 'gone:1:0', error = 'boom',"
                f" lease_expires_at = UTC_TIMESTAMP(3) - INTERVAL 1 SECOND WHERE id = '{jid}'")
    e = engines(workers=1)
    j = wait_for(lambda: q.finished(jid), 10, "lapsed job failed")
    assert j["status"] == "failed" and j["attempts"] == 3, j
    assert j["error"] == "lease expired after 3 attempts; last error: boom", j
    assert e.stop() == 0


def test_cancel_queued_and_running(q, engines):
    (queued,) = q.enqueue([("sleep", None, {"seconds": 0})])
    q.cancel(queued)
    assert q.job(queued)["status"] == "cancelled"
    e = engines(workers=1)
    (running,) = q.enqueue([("sleep", None, {"seconds": 30})])
    e.wake()
    wait_for(lambda: q.job(running)["progress"] > 0, 10, "progress written")
    q.cancel(running)
    j = wait_for(lambda: q.finished(running), 5, "running job cancelled")
    assert j["status"] == "cancelled" and j["attempts"] == 1 and j["result"] is None, j
    assert q.job(queued)["status"] == "cancelled" and q.job(queued)["attempts"] == 0
    assert e.stop() == 0


def test_retry_and_permanent_failure(stack, q, engines):
    missing = q.add_track(None, "engine-test/missing.wav")
    bad = stack.storage_dir / "engine-test" / f"{uuid.uuid4().hex}.wav"
    bad.parent.mkdir(parents=True, exist_ok=True)
    bad.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt junk that is not audio")
    damaged = q.add_track(None, f"engine-test/{bad.name}")
    try:
        ids = q.enqueue([("probe", missing, {}), ("probe", damaged, {}),
                         ("sleep", None, {"seconds": 0.2, "fail_attempts": 1})])
        e = engines(workers=2)
        e.wake()
        miss, dam, flaky = (wait_for(lambda i=i: q.finished(i), 30, "job finished") for i in ids)
    finally:
        bad.unlink(missing_ok=True)
    assert miss["status"] == "failed" and miss["attempts"] == 1 and "missing" in miss["error"], miss
    assert dam["status"] == "failed" and dam["attempts"] == 1 and bad.name in dam["error"], dam
    assert str(stack.storage_dir) not in dam["error"]
    assert flaky["status"] == "completed" and flaky["attempts"] == 2 and flaky["result"]["attempt"] == 2, flaky
    for tid in (missing, damaged):  # the rows of failed probes are untouched
        assert stack.sql(f"SELECT duration, format FROM tracks WHERE id = '{tid}'")[0] == ("0", "x")
    assert e.stop() == 0


def test_sigterm_releases_running_job(stack, q, engines):
    e = engines(workers=1, grace=1)
    (jid,) = q.enqueue([("sleep", None, {"seconds": 60})])
    e.wake()
    wait_for(lambda: q.job(jid)["status"] == "running", 10, "job running")
    assert e.stop(signal.SIGTERM, timeout=20) == 0
    j = q.job(jid)
    assert j["status"] == "queued" and j["attempts"] == 0 and j["owner"] is None, j
    assert "released (shutdown)" in e.text()
    assert not e.sock.exists() and not e.pidfile.exists()
    assert engine_rows(stack, e) == 0
    q.cancel(jid)


def test_sigterm_lets_a_short_job_finish(q, engines):
    e = engines(workers=1, grace=20)
    (jid,) = q.enqueue([("sleep", None, {"seconds": 1.5})])
    e.wake()
    wait_for(lambda: q.job(jid)["status"] == "running", 10, "job running")
    assert e.stop(signal.SIGTERM, timeout=20) == 0
    assert q.job(jid)["status"] == "completed"


def test_sighup_restarts_in_place(stack, q, engines):
    """SIGHUP: the running job finishes within the grace period, a long one
    goes back to the queue, and the same process (same pid, pid file kept)
    executes itself anew, registers again and takes the released job up."""
    e = engines(workers=2, grace=2)
    short, long_ = q.enqueue([("sleep", None, {"seconds": 0.8}), ("sleep", None, {"seconds": 4})])
    e.wake()
    wait_for(lambda: q.job(short)["status"] == "running" and q.job(long_)["status"] == "running", 10,
             "both jobs running")
    e.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "restarting: executing" in e.text(), 20, "the restart")
    assert e.proc.poll() is None, e.text()
    j = q.job(short)
    assert j["status"] == "completed" and e.owns(j["result"]["owner"]), (j, e.text())
    assert "released (shutdown)" in e.text()
    # the new program: binds its socket, registers, and runs the released job to the end
    wait_for(lambda: e.text().count("started: 2 worker(s)") == 2, 20, "the engine to start again")
    assert e.pidfile.read_text().strip() == str(e.pid)
    wait_for(lambda: engine_rows(stack, e) == 1, 10, "the engine registered again")
    j = wait_for(lambda: q.finished(long_), 20, "the released job to finish")
    assert j["status"] == "completed" and j["attempts"] == 1 and e.owns(j["result"]["owner"]), j
    (after,) = q.enqueue([("sleep", None, {"seconds": 0.1})])
    e.wake()
    assert wait_for(lambda: q.finished(after), 10, "a job after the restart")["status"] == "completed"
    assert e.stop(signal.SIGTERM, timeout=20) == 0
    assert not e.pidfile.exists() and engine_rows(stack, e) == 0


def test_once_drains_the_queue_and_exits(stack, q, track, no_stack_demixd):
    tid, _ = track()
    ids = q.enqueue([("probe", tid, {})] * 5)
    out = subprocess.run([str(stack.build / "demixd"), "--once", "--workers", "2", "--device", "cpu",
                          "--types", "probe"], env=stack.env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert all(q.job(i)["status"] == "completed" for i in ids)


def test_queue_library(stack):
    """engine/jobs' unit program with its database cases, on the stack's database."""
    prog = stack.build / "tests" / "test_jobs"
    if not prog.exists():
        pytest.skip(f"{prog} is not built")
    out = subprocess.run([str(prog)], env=dict(stack.env, DEMIX_TEST_DB="1"), capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "skipped" not in out.stderr, out.stderr
