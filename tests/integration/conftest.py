"""Fixtures for the demix integration tests: a real stack (MariaDB, demixd,
demix-fcgi, nginx) on loopback, reached through nginx.

The stack
---------
`tools/test` starts a private test stack under var/test (HTTP 18080, MariaDB
13307) and exports DEMIX_TEST_VAR and DEMIX_TEST_URL. Run on its own
(`.venv/bin/pytest tests/integration`), this conftest starts the same stack
with `tools/up --var var/test ...` when nothing answers there, and stops it
at the end of the session (only if it started it).

Session fixtures
----------------
stack
    A `Stack` with:
      base_url       "http://127.0.0.1:18080"
      admin_token    the superadmin token tools/up created
      var, run_dir, log_dir, storage_dir, conf   paths (pathlib.Path)
      build          path of build/ (demix, demixd, demix-fcgi; DEMIX_TEST_BUILD names
                     another, relative to the checkout)
      env            dict for subprocesses: os.environ plus DEMIX_HOME,
                     DEMIX_CONFIG and DEMIX_VAR_DIR of the test stack, so
                     build/demix and build/demixd use its database
      config(key, default=None)   a value from the stack's demix.conf
      sql(query) -> list[tuple]   run SQL through the `mariadb` client on the
                     stack's socket as the demix user; rows of str (NULL is
                     None); statements without rows give []
      demix(*args, check=True) -> CompletedProcess   run build/demix
      url(path)      base_url + path
      request(method, path, token=..., **kw) -> requests.Response
                     (token=None sends no Authorization header)
      get/post/patch/delete(path, token=..., **kw)   shorthands
      demixd_pid()   pid of the stack's own demixd (None when stopped)
      stop_demixd()  stop the stack's demixd (SIGTERM, waits for it)
      ensure_up()    start whatever part of the stack is not running
                     (tools/up on the test stack; start_demixd is the same)
token
    A factory: token(user=None, role="user", name=None) -> str. Creates the
    user if missing (a fresh unique name when user is None) and returns a
    new API token. Every call gives a fresh token, so tests do not share a
    rate-limit window.
spawn_demixd
    A factory: spawn_demixd(extra_env=None, args=()) -> subprocess.Popen of
    an extra build/demixd on the stack's database. Its own wake-up socket
    (DEMIX_ENGINE_SOCKET under run/) unless extra_env sets one; output goes
    to log/demixd-extra-N.log (the Popen has .log_path). Every process
    still running at the end of the test is stopped (SIGTERM, then SIGKILL
    after 10 s). A test may SIGKILL one itself (e.g. to let its lease lapse).
no_stack_demixd
    Function fixture: the stack's own demixd is stopped for the test and
    started again afterwards, so only the test's spawned engines claim jobs.
audio
    A factory writing test audio into the test's tmp dir:
    audio(fmt="wav", seconds=1.0, rate=44100, channels=2, freq=440.0,
    name=None) -> pathlib.Path; fmt is one of wav, flac, ogg, mp3 (written
    with soundfile/libsndfile).
upload
    upload(token, path, **fields) -> requests.Response: POST /api/tracks as
    multipart/form-data with the file in the part "file" and the other
    fields as text parts.

Helpers (import from conftest)
------------------------------
wait_job(stack, token, path, seconds, poll=0.2) -> dict
    Poll GET path (a job's status route) until the job is completed, failed
    or cancelled and return its data; every answer must be 200 JSON. Fails
    the test after `seconds`.
"""

import itertools
import math
import os
import pathlib
import signal
import subprocess
import time
import uuid

import numpy as np
import pytest
import requests
import soundfile as sf

ROOT = pathlib.Path(__file__).resolve().parents[2]
TEST_PORT = int(os.environ.get("DEMIX_TEST_PORT", "18080"))
TEST_DB_PORT = int(os.environ.get("DEMIX_TEST_DB_PORT", "13307"))


class Stack:
    def __init__(self, var, base_url):
        self.var = var
        self.run_dir = var / "run"
        self.log_dir = var / "log"
        self.conf = var / "demix.conf"
        self.build = ROOT / os.environ.get("DEMIX_TEST_BUILD", "build")
        self.base_url = base_url.rstrip("/")
        self.env = dict(os.environ)
        self.env.update(DEMIX_HOME=str(ROOT), DEMIX_CONFIG=str(self.conf), DEMIX_VAR_DIR=str(var))
        self.storage_dir = pathlib.Path(self.config("storage_dir", str(var / "storage")))
        self.admin_token = (self.run_dir / "admin.token").read_text().strip()
        self.http = requests.Session()

    def config(self, key, default=None):
        value = default
        for line in self.conf.read_text().splitlines():
            line = line.split("#", 1)[0]
            if "=" in line:
                k, v = line.split("=", 1)
                if k.strip() == key:
                    value = v.strip()
        return value

    def sql(self, query):
        env = dict(self.env, MYSQL_PWD=self.config("db_password", ""))
        out = subprocess.run(
            ["mariadb", "--no-defaults", "--protocol=socket", "--socket", str(self.run_dir / "mariadb.sock"),
             "-u", self.config("db_user", "demix"), "-N", "-B", "-r", self.config("db_name", "demix"), "-e", query],
            env=env, capture_output=True, text=True, check=False)
        if out.returncode:
            raise RuntimeError(f"SQL failed: {query}\n{out.stderr}")
        return [tuple(None if c == "NULL" else c for c in line.split("\t")) for line in out.stdout.splitlines()]

    def demix(self, *args, check=True):
        return subprocess.run([str(self.build / "demix"), *map(str, args)], env=self.env,
                              capture_output=True, text=True, check=check)

    def url(self, path):
        return self.base_url + path

    def request(self, method, path, token=..., **kw):
        if token is ...:
            token = self.admin_token
        headers = dict(kw.pop("headers", None) or {})
        if token is not None:
            headers.setdefault("Authorization", f"Bearer {token}")
        kw.setdefault("timeout", 30)
        return self.http.request(method, self.url(path), headers=headers, **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def patch(self, path, **kw):
        return self.request("PATCH", path, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def demixd_pid(self):
        try:
            pid = int((self.run_dir / "demixd.pid").read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid

    def stop_demixd(self):
        pid = self.demixd_pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        _wait_gone(pid, 30)

    def ensure_up(self):
        _tools_up(self.var)

    start_demixd = ensure_up


def _wait_gone(pid, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(") ", 1)[1].startswith("Z"):
                    return True
        except (OSError, IndexError):
            return True
        time.sleep(0.05)
    return False


def wait_job(stack, token, path, seconds, poll=0.2):
    deadline = time.monotonic() + seconds
    j = None
    while time.monotonic() < deadline:
        r = stack.get(path, token=token)
        assert r.status_code == 200, (r.status_code, r.text[:500])
        assert r.headers["Content-Type"].startswith("application/json")
        j = r.json()["data"]
        if j["status"] in ("completed", "failed", "cancelled"):
            return j
        time.sleep(poll)
    pytest.fail(f"job {path} still {j and j['status']} after {seconds}s")


def _tools_up(var):
    # the stack's binaries: a restart (no_stack_demixd) keeps DEMIX_TEST_BUILD's
    build = ["--build-dir", os.environ["DEMIX_TEST_BUILD"]] if os.environ.get("DEMIX_TEST_BUILD") else []
    subprocess.run([str(ROOT / "tools/up"), "--var", str(var), "--port", str(TEST_PORT), "--db-port",
                    str(TEST_DB_PORT), "--fast-db", "--no-build", "--no-bootstrap", "--quiet", *build,
                    "--set", "max_upload_bytes=67108864", "--set", "poll_ms=200",
                    "--set", "rate_auth_per_min=60", "--set", "rate_heavy_per_min=10",
                    "--set", "retry_backoff_seconds=1", "--set", "fcgi_senders=8"], check=True, cwd=ROOT)


def _healthy(url):
    try:
        return requests.get(url + "/health", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "long_audio: minutes of audio; left out of the run on the CUDA emulator, where the GPU "
        "tier's programs check the same paths on short signals")


@pytest.fixture(scope="session")
def stack():
    var = ROOT / os.environ.get("DEMIX_TEST_VAR", "var/test")
    url = os.environ.get("DEMIX_TEST_URL", f"http://127.0.0.1:{TEST_PORT}")
    started = False
    if not _healthy(url):
        _tools_up(var)
        started = True
    s = Stack(var, url)
    yield s
    if started:
        subprocess.run([str(ROOT / "tools/down"), "--var", str(var)], check=False)


_names = itertools.count(1)


@pytest.fixture(scope="session")
def token(stack):
    def make(user=None, role="user", name=None):
        if user is None:
            user = f"t{os.getpid()}-{next(_names)}-{uuid.uuid4().hex[:6]}"
        args = ["token", "create", "--user", user, "--role", role]
        if name:
            args += ["--name", name]
        out = stack.demix(*args)
        tok = out.stdout.strip()
        assert tok.startswith("dx_") and len(tok) == 43, out
        return tok
    return make


@pytest.fixture
def spawn_demixd(stack):
    procs = []

    def spawn(extra_env=None, args=()):
        n = len(procs) + 1
        env = dict(stack.env)
        env["DEMIX_ENGINE_SOCKET"] = str(stack.run_dir / f"demixd-extra-{os.getpid()}-{n}.sock")
        env.update(extra_env or {})
        log_path = stack.log_dir / f"demixd-extra-{n}.log"
        log = open(log_path, "ab")
        log_start = log.tell()  # the file collects every run's engines: this one's lines start here
        p = subprocess.Popen([str(stack.build / "demixd"), *map(str, args)], env=env, stdout=log,
                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT)
        log.close()
        p.log_path = log_path
        p.log_start = log_start
        procs.append(p)
        return p

    yield spawn
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


@pytest.fixture
def no_stack_demixd(stack):
    stack.stop_demixd()
    yield
    stack.start_demixd()


def _tone(seconds, rate, channels, freq):
    t = np.arange(int(seconds * rate)) / rate
    x = 0.3 * np.sin(2 * math.pi * freq * t)
    cols = [x * (1.0 - 0.2 * c) for c in range(channels)]
    return np.stack(cols, axis=1).astype(np.float32)


@pytest.fixture
def audio(tmp_path):
    formats = {"wav": ("WAV", "PCM_16"), "flac": ("FLAC", "PCM_16"), "ogg": ("OGG", "VORBIS"),
               "mp3": ("MP3", "MPEG_LAYER_III")}

    def make(fmt="wav", seconds=1.0, rate=44100, channels=2, freq=440.0, name=None):
        path = tmp_path / (name or f"tone-{freq:g}-{seconds:g}s.{fmt}")
        container, subtype = formats[fmt]
        sf.write(str(path), _tone(seconds, rate, channels, freq), rate, format=container, subtype=subtype)
        return path
    return make


@pytest.fixture
def upload(stack):
    def up(token, path, **fields):
        path = pathlib.Path(path)
        with open(path, "rb") as f:
            files = {"file": (path.name, f, "application/octet-stream")}
            data = {k: str(v) for k, v in fields.items()}
            return stack.post("/api/tracks", token=token, files=files, data=data)
    return up
