"""Stem separation through nginx: POST /api/processing/separate runs a
`separate` job on the stack's demixd with hpss and with the kit's
htdemucs_tiny placed in the model folder; one stem and the ZIP of a track's
stems download through /export and /files/stems; the ZIP is composed as it
is sent and holds exactly the newest completed job's stems, byte for byte;
stems in WAV, FLAC or MP3 (the request's format); clients that stall in the
middle of archive downloads hold sender processes,
not the API's responders, and past fcgi_senders get 503 BUSY; hpss stems add
back to the mix; unknown
model 422, missing track 404, lalalai 501, a model without weights 422
MODEL_NOT_INSTALLED; a corrupt checkpoint fails its job with a clear error
and the engine keeps serving; the kit's separate case of each graph family
(HTDemucs, HDemucs, time-only Demucs), uploaded and separated through the
API, gives the official stems; the same job twice at once (the engine's two
workers sharing the CPU ops' pool) gives the same stem bytes; track_ids
queues a job per track, all or none. Also `demix separate -n hpss` against
librosa."""

import io
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import time
import uuid
import zipfile

import numpy as np
import pytest
import soundfile as sf

from conftest import wait_job

ROOT = pathlib.Path(__file__).resolve().parents[2]
KIT = pathlib.Path(os.environ.get("DEMIX_REFERENCE", ROOT.parent / "shared" / "reference")) / "demucs"


def _data(r, status):
    assert r.status_code == status, (r.status_code, r.text[:500])
    return r.json()["data"]


def _model_dir(stack):
    d = pathlib.Path(stack.config("model_dir", str(stack.var / "models")))
    d.mkdir(parents=True, exist_ok=True)
    return d


def _wait(stack, tok, job_id, seconds=180):
    return wait_job(stack, tok, f"/api/processing/job/{job_id}", seconds, poll=0.25)


def _music(path, seconds=3.0, rate=44100):
    """A tone with clicks, peak well below 1 so no stem is rescaled."""
    t = np.arange(int(seconds * rate)) / rate
    x = 0.25 * np.sin(2 * np.pi * 220 * t) + 0.1 * np.sin(2 * np.pi * 331 * t)
    x[:: rate // 4] += 0.3
    stereo = np.stack([x, 0.8 * x], axis=1).astype(np.float32)
    sf.write(str(path), stereo, rate, subtype="PCM_16")
    return path


def _install_kit_model(stack, name):
    """The kit's NAME.th in the stack's model folder (skips without the kit)."""
    src = KIT / f"{name}.th"
    if not src.is_file():
        pytest.skip("reference kit not found")
    shutil.copy(src, _model_dir(stack) / f"{name}.th")


def _separate(stack, tok, track_id, model, **extra):
    return stack.post("/api/processing/separate", token=tok,
                      json={"track_id": track_id, "model": model, "engine": "local", **extra})


def test_models_list(stack, token):
    tok = token()
    models = _data(stack.get("/api/processing/models", token=tok), 200)["models"]
    by = {m["name"]: m for m in models}
    for name in ("htdemucs", "htdemucs_ft", "htdemucs_6s", "hdemucs_mmi", "mdx_extra", "hpss"):
        assert name in by, name
    assert by["hpss"]["installed"] is True and by["hpss"]["stems"] == 2
    assert by["hpss"]["stem_names"] == ["harmonic", "percussive"]
    assert by["htdemucs_6s"]["stems"] == 6 and "piano" in by["htdemucs_6s"]["stem_names"]
    assert isinstance(by["htdemucs"]["installed"], bool) and by["htdemucs"]["description"]


def test_hpss_job_stems_and_downloads(stack, token, upload, tmp_path):
    tok = token()
    mix_path = _music(tmp_path / "song.wav")
    t = _data(upload(tok, mix_path), 201)
    j = _data(_separate(stack, tok, t["id"], "hpss"), 202)
    assert j["status"] == "queued" and j["model"] == "hpss" and j["track_id"] == t["id"]
    done = _wait(stack, tok, j["job_id"])
    assert done["status"] == "completed", done
    assert done["progress"] == 100 and done["model"] == "hpss" and done["error"] is None
    stems = {s["stem"]: s for s in done["stems"]}
    assert set(stems) == {"harmonic", "percussive"}
    for s in stems.values():
        assert s["url"] == f"/export/stem/{s['id']}" and s["size"] > 0
        assert s["duration"] == pytest.approx(3.0, abs=1e-3)

    # one stem through nginx
    r = stack.get(stems["harmonic"]["url"], token=tok)
    assert r.status_code == 200, r.text[:300]
    h, rate = sf.read(io.BytesIO(r.content), dtype="float32")
    assert rate == 44100
    p, _ = sf.read(io.BytesIO(stack.get(stems["percussive"]["url"], token=tok).content), dtype="float32")
    mix, _ = sf.read(str(mix_path), dtype="float32")
    assert h.shape == mix.shape == p.shape
    # complementary masks: the stems add back to the mix (16-bit rounding of each)
    assert np.abs(h + p - mix).max() < 1e-4
    assert np.linalg.norm(h) > 0.5 * np.linalg.norm(mix)

    # files live under storage/stems/<job_id>/ with rows in `stems`
    rows = stack.sql(f"SELECT stem, file_path, user_id, model FROM stems WHERE job_id = '{j['job_id']}' ORDER BY stem")
    assert [r[0] for r in rows] == ["harmonic", "percussive"]
    assert all(r[1] == f"stems/{j['job_id']}/{r[0]}.wav" and r[3] == "hpss" for r in rows)
    assert (stack.storage_dir / rows[0][1]).is_file()

    # each stem also under /files/stems/<job_id>/<stem>.wav, same bytes
    for s in stems.values():
        assert s["file_url"] == f"/files/stems/{j['job_id']}/{s['stem']}.wav"
        r = stack.get(s["file_url"], token=tok)
        assert r.status_code == 200, r.text[:300]
        assert r.headers["Content-Type"] == "audio/wav"
        assert r.content == stack.get(s["url"], token=tok).content
        assert r.content == (stack.storage_dir / f"stems/{j['job_id']}/{s['stem']}.wav").read_bytes()

    # the archive is announced with the stems (its exact size, each stem's
    # CRC) and composed as it is sent: no copy of the stems on disk
    zip_rel = f"stems/{j['job_id']}/stems.zip"
    assert done["archive_url"] == f"/files/{zip_rel}"
    stem_dir = stack.storage_dir / f"stems/{j['job_id']}"
    assert sorted(os.listdir(stem_dir)) == ["harmonic.wav", "percussive.wav"]
    before = _storage_files(stack)
    r = stack.get(f"/export/stems/{t['id']}", token=tok)
    assert r.status_code == 200, r.text[:300]
    assert r.headers["Content-Type"] == "application/zip"
    assert "X-Accel-Redirect" not in r.headers
    assert f'filename="hpss-{t["id"]}.zip"' in r.headers["Content-Disposition"]
    archive = r.content
    arow = stack.sql(f"SELECT file_path, size, entries, model, track_id FROM stem_archives WHERE job_id = '{j['job_id']}'")
    assert arow == [(zip_rel, str(len(archive)), "2", "hpss", t["id"])]
    assert int(r.headers["Content-Length"]) == len(archive)
    crcs = stack.sql(f"SELECT stem, crc32 FROM stems WHERE job_id = '{j['job_id']}' ORDER BY stem")
    z = zipfile.ZipFile(io.BytesIO(archive))
    assert [(i.filename, i.CRC, i.compress_type) for i in z.infolist()] == \
        [(f"hpss/{stem}.wav", int(crc), zipfile.ZIP_STORED) for stem, crc in crcs]
    _check_zip(stack, archive, j["job_id"], "hpss", ["harmonic", "percussive"])
    zh, _ = sf.read(io.BytesIO(z.read("hpss/harmonic.wav")), dtype="float32")
    assert np.array_equal(zh, h)
    r = stack.get(done["archive_url"], token=tok)
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/zip" and r.content == archive
    # byte ranges of it, as of a stored file (resumed downloads)
    r = stack.get(done["archive_url"], token=tok, headers={"Range": "bytes=100-4195"})
    assert r.status_code == 206 and r.content == archive[100:4196], (r.status_code, len(r.content))
    assert r.headers["Content-Range"] == f"bytes 100-4195/{len(archive)}"
    assert _storage_files(stack) == before
    # a stems.zip that an engine from before schema 006 stored is sent as it is
    (stem_dir / "stems.zip").write_bytes(b"PK archive of an older engine")
    try:
        assert stack.get(done["archive_url"], token=tok).content == b"PK archive of an older engine"
    finally:
        (stem_dir / "stems.zip").unlink()

    # someone else sees none of it; an admin sees all of it
    other = token()
    assert stack.get(stems["harmonic"]["url"], token=other).status_code == 404
    assert stack.get(f"/export/stems/{t['id']}", token=other).status_code == 404
    assert stack.get(f"/api/processing/job/{j['job_id']}", token=other).status_code == 404
    for url in (stems["harmonic"]["file_url"], done["archive_url"]):
        r = stack.get(url, token=other)
        assert r.status_code == 404 and r.json()["code"] == "NOT_FOUND", (url, r.text[:200])
        assert stack.get(url, token=None).status_code == 401
        assert stack.get(url, token=stack.admin_token).status_code == 200
    r = stack.get(f"/export/stems/{t['id']}", token=stack.admin_token)
    assert r.status_code == 200 and r.content == archive

    # only the files the rows name: no other file of the folder, no traversal
    stray = stem_dir / "harmonic.wav.tmp.1"
    stray.write_bytes(b"partial")
    try:
        for path in (f"/files/stems/{j['job_id']}/harmonic.wav.tmp.1", f"/files/stems/{j['job_id']}/.stems.zip.tmp.1",
                     f"/files/stems/{j['job_id']}/", f"/files/stems/{j['job_id']}/harmonic.wav/x",
                     f"/files/stems/{j['job_id']}", f"/files/stems/not-a-job/harmonic.wav",
                     f"/files/stems/{uuid.uuid4()}/harmonic.wav"):
            r = stack.get(path, token=tok)
            assert r.status_code in (400, 404), (path, r.status_code)
    finally:
        stray.unlink()

    # a newer separation of the track replaces what /export/stems serves;
    # a failed one does not
    j2 = _data(_separate(stack, tok, t["id"], "hpss", two_stems="harmonic"), 202)
    done2 = _wait(stack, tok, j2["job_id"])
    assert done2["status"] == "completed", done2
    r = stack.get(f"/export/stems/{t['id']}", token=tok)
    assert r.status_code == 200
    zip2 = r.content
    _check_zip(stack, zip2, j2["job_id"], "hpss", ["harmonic", "no_harmonic"])
    assert stack.get(done["archive_url"], token=tok).content == archive  # the older one stays reachable
    stack.sql(f"UPDATE jobs SET status = 'failed' WHERE id = '{j2['job_id']}'")
    assert stack.get(f"/export/stems/{t['id']}", token=tok).content == archive


def _stalled_download(stack, tok, path):
    """A GET of path through nginx by a client that then reads no more than
    the head: (socket, status line, head text). A tiny receive window, so
    that nginx and the socket buffers soon hold all they can of the body."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(10)
    host, port = stack.base_url.split("//")[1].split(":")
    s.connect((host, int(port)))
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {tok}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(1024)
        assert chunk, head
        head += chunk
    text = head.split(b"\r\n\r\n")[0].decode("latin-1")
    return s, text.split("\r\n")[0], text


def _senders(stack):
    """pids of demix-fcgi's senders: the children of its workers."""
    parent = int((stack.run_dir / "demix-fcgi.pid").read_text())
    ppid = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = open(f"/proc/{d}/stat").read()
            except OSError:
                continue
            ppid[int(d)] = int(stat.rsplit(")", 1)[1].split()[1])
    workers = {p for p, pp in ppid.items() if pp == parent}
    return sorted(p for p, pp in ppid.items() if pp in workers)


def test_stalled_archive_downloads_leave_the_api_free(stack, token, upload, tmp_path):
    tok = token()
    t = _data(upload(tok, _music(tmp_path / "long.wav", seconds=40.0)), 201)
    job_id = _data(_separate(stack, tok, t["id"], "hpss"), 202)["job_id"]
    assert _wait(stack, tok, job_id)["status"] == "completed"
    path = f"/export/stems/{t['id']}"
    head = stack.request("HEAD", path, token=tok)  # its size, with no body to send
    assert head.status_code == 200, head.headers
    size = int(head.headers["Content-Length"])
    assert stack.sql(f"SELECT size FROM stem_archives WHERE job_id = '{job_id}'") == [(str(size),)]
    assert size > 12_000_000  # far more than nginx and the sockets hold for a stalled client
    workers = int(stack.config("fcgi_workers", 4))
    senders = int(stack.config("fcgi_senders", 64))
    assert senders > workers  # the test's point: more stalled downloads than responders
    # as many stalled downloads as there are senders, all sent; one more is BUSY
    socks, statuses = [], []
    try:
        for _ in range(senders + 1):
            s, status, head = _stalled_download(stack, tok, path)
            socks.append(s)
            statuses.append(status)
        assert all(" 200 " in st for st in statuses[:senders]), statuses
        assert " 503 " in statuses[senders], statuses
        assert "Retry-After: " in head and "Content-Disposition" not in head, head
        # the API answers at once while every sender is held
        assert stack.get("/health", timeout=5).status_code == 200
        assert stack.get(f"/api/tracks/{t['id']}", token=tok, timeout=5).status_code == 200
        r = stack.get(path, token=tok, timeout=5)
        assert r.status_code == 503 and r.json()["code"] == "BUSY", r.text[:300]
        assert int(r.headers["Retry-After"]) > 0
        health = stack.get("/health", timeout=5).json()
        assert health["streams"] == {"active": senders, "limit": senders}, health
        # senders killed by a signal give their places back at once, also
        # while their workers wait for requests (each reaps its own on SIGCHLD)
        killed = _senders(stack)[:2]
        assert len(killed) == 2, killed
        for pid in killed:
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.3)
        health = stack.get("/health", timeout=5).json()
        assert health["streams"]["active"] == senders - 2, health
        for _ in range(2):
            s, status, head = _stalled_download(stack, tok, path)
            socks.append(s)
            assert " 200 " in status, (status, head)
        s, status, head = _stalled_download(stack, tok, path)
        socks.append(s)
        assert " 503 " in status, (status, head)
    finally:
        for s in socks:
            s.close()
    # the stalled clients gone, their senders end and the archive comes whole
    deadline = time.monotonic() + 20
    while True:
        r = stack.get(path, token=tok, timeout=30)
        if r.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert r.status_code == 200 and len(r.content) == size, (r.status_code, r.text[:300])
    _check_zip(stack, r.content, job_id, "hpss", ["harmonic", "percussive"])
    assert stack.get("/health", timeout=5).json()["streams"]["active"] == 0


def _storage_files(stack):
    out = set()
    for d, _, files in os.walk(stack.storage_dir):
        for f in files:
            p = os.path.join(d, f)
            out.add((os.path.relpath(p, stack.storage_dir), os.stat(p).st_mtime_ns))
    return out


def _check_zip(stack, data, job_id, model, stem_names, ext="wav"):
    """data is a valid ZIP holding exactly the job's stems, byte for byte."""
    z = zipfile.ZipFile(io.BytesIO(data))
    assert z.testzip() is None
    assert sorted(z.namelist()) == sorted(f"{model}/{n}.{ext}" for n in stem_names)
    rows = stack.sql(f"SELECT stem, file_path FROM stems WHERE job_id = '{job_id}'")
    assert sorted(r[0] for r in rows) == sorted(stem_names)
    for stem, rel in rows:
        assert z.read(f"{model}/{stem}.{ext}") == (stack.storage_dir / rel).read_bytes()


def test_stem_formats(stack, token, upload, tmp_path):
    """format wav (default), flac, mp3: the stems are stored, listed, served
    and archived in it; FLAC holds the WAV job's very samples, MP3 is 320
    kbps; any other format is 422."""
    tok = token()
    seconds = 6.0
    mix_path = _music(tmp_path / "fmt.wav", seconds=seconds)
    t = _data(upload(tok, mix_path), 201)
    jobs = {}
    for fmt in ("wav", "flac", "mp3"):
        extra = {} if fmt == "wav" else {"format": fmt}
        q = _data(_separate(stack, tok, t["id"], "hpss", **extra), 202)
        assert q["format"] == fmt
        done = _wait(stack, tok, q["job_id"])
        assert done["status"] == "completed" and done["format"] == fmt, done
        jobs[fmt] = done
    types = {"wav": "audio/wav", "flac": "audio/flac", "mp3": "audio/mpeg"}
    audio = {}
    for fmt, done in jobs.items():
        stems = {s["stem"]: s for s in done["stems"]}
        assert set(stems) == {"harmonic", "percussive"}
        for name, s in stems.items():
            assert s["format"] == fmt and s["file_url"] == f"/files/stems/{done['id']}/{name}.{fmt}"
            r = stack.get(s["url"], token=tok)
            assert r.status_code == 200 and r.headers["Content-Type"] == types[fmt], (r.status_code, r.headers)
            assert len(r.content) == s["size"]
            assert f'-{name}.{fmt}"' in r.headers["Content-Disposition"]
            assert stack.get(s["file_url"], token=tok).content == r.content
            audio[fmt, name], rate = sf.read(io.BytesIO(r.content), dtype="float32")
            assert rate == 44100
            if fmt == "mp3":
                kbps = len(r.content) * 8 / seconds / 1000
                assert 310 < kbps < 340, kbps
        _check_zip(stack, stack.get(done["archive_url"], token=tok).content, done["id"], "hpss",
                   ["harmonic", "percussive"], ext=fmt)
    frames = int(seconds * 44100)
    for name in ("harmonic", "percussive"):
        assert audio["wav", name].shape == audio["flac", name].shape == (frames, 2)
        assert np.array_equal(audio["wav", name], audio["flac", name])  # lossless, same 16-bit samples
        m = audio["mp3", name]
        assert m.shape[1] == 2 and frames <= m.shape[0] < frames + 4410
        ref = np.sqrt(np.mean(audio["wav", name] ** 2))
        assert abs(np.sqrt(np.mean(m ** 2)) - ref) < 0.05 * ref
    for bad in ("ogg", "WAV", 3):
        r = _separate(stack, tok, t["id"], "hpss", format=bad)
        assert r.status_code == 422 and "format" in r.json()["details"], r.text


def test_htdemucs_tiny_job(stack, token, upload, tmp_path):
    _install_kit_model(stack, "htdemucs_tiny")
    tok = token()
    t = _data(upload(tok, _music(tmp_path / "mix.wav", seconds=9.0)), 201)
    j = _data(_separate(stack, tok, t["id"], "htdemucs_tiny"), 202)
    done = _wait(stack, tok, j["job_id"])
    assert done["status"] == "completed", done
    assert sorted(s["stem"] for s in done["stems"]) == ["bass", "drums", "other", "vocals"]
    s = done["stems"][0]
    r = stack.get(s["url"], token=tok)
    assert r.status_code == 200
    x, rate = sf.read(io.BytesIO(r.content), dtype="float32")
    assert rate == 44100 and x.shape == (9 * 44100, 2) and np.isfinite(x).all()
    # two stems: vocals and no_vocals = mix - vocals
    j2 = _data(_separate(stack, tok, t["id"], "htdemucs_tiny", two_stems="vocals", shifts=0), 202)
    done2 = _wait(stack, tok, j2["job_id"])
    assert done2["status"] == "completed", done2
    assert sorted(s["stem"] for s in done2["stems"]) == ["no_vocals", "vocals"]
    # each job has its ZIP; the track's ZIP is the newest completed job's
    _check_zip(stack, stack.get(done["archive_url"], token=tok).content, j["job_id"],
               "htdemucs_tiny", ["bass", "drums", "other", "vocals"])
    r = stack.get(f"/export/stems/{t['id']}", token=tok)
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/zip"
    _check_zip(stack, r.content, j2["job_id"], "htdemucs_tiny", ["no_vocals", "vocals"])


@pytest.mark.parametrize("case", ["htdemucs_tiny", "hdemucs_tiny", "demucs_tiny"])
def test_kit_case_through_the_api_gives_the_official_stems(stack, token, upload, tmp_path, case):
    """The kit's separate/input as an upload, the job (shifts 0, the default
    overlap 0.25), every stem downloaded: within 2e-3 relative L2 of the
    official separate/output (the stems are 16-bit PCM: about 8e-4 of that is
    their quantisation)."""
    _install_kit_model(stack, case)
    man = json.loads((KIT / case / "manifest.json").read_text())
    ten = {t["name"]: t for t in man["tensors"]}
    read = lambda t: np.fromfile(KIT / case / t["file"], dtype=t["dtype"]).reshape(t["shape"]).astype(np.float32)
    mix, ref = read(ten["separate/input"]), read(ten["separate/output"])
    path = tmp_path / f"{case}.wav"
    sf.write(str(path), mix.T, man["samplerate"], subtype="FLOAT")
    tok = token()
    t = _data(upload(tok, path), 201)
    j = _data(_separate(stack, tok, t["id"], case, shifts=0), 202)
    done = _wait(stack, tok, j["job_id"])
    assert done["status"] == "completed", done
    by = {s["stem"]: s for s in done["stems"]}
    assert sorted(by) == sorted(man["sources"])
    ours = []
    for src in man["sources"]:
        r = stack.get(by[src]["url"], token=tok)
        assert r.status_code == 200, r.text[:200]
        x, rate = sf.read(io.BytesIO(r.content), dtype="float32")
        assert rate == man["samplerate"] and x.shape == mix.T.shape
        ours.append(x.T)
    e = float(np.linalg.norm(np.stack(ours) - ref) / np.linalg.norm(ref))
    assert e < 2e-3, f"{case}: relative L2 {e:.3g} from the official stems"


def test_same_job_twice_at_once_gives_the_same_bytes(stack, token, upload, tmp_path):
    """Two identical jobs (shifts 1: seeded offsets), submitted back to back,
    are claimed by the engine's two workers at once, whose CPU ops share one
    thread pool; each stem file of one equals the other's byte for byte."""
    _install_kit_model(stack, "htdemucs_tiny")
    tok = token()
    t = _data(upload(tok, _music(tmp_path / "twice.wav", seconds=20.0)), 201)
    jobs = [_data(_separate(stack, tok, t["id"], "htdemucs_tiny"), 202)["job_id"] for _ in range(2)]
    stems = []
    for j in jobs:
        done = _wait(stack, tok, j)
        assert done["status"] == "completed", done
        stems.append({s["stem"]: stack.get(s["url"], token=tok).content for s in done["stems"]})
    assert sorted(stems[0]) == ["bass", "drums", "other", "vocals"]
    for name, data in stems[0].items():
        assert len(data) > 44 and data == stems[1][name], name
    # the request's seed and overlap reach the engine: another seed shifts
    # the track by other offsets, another overlap cuts other segments
    for extra in ({"seed": 1}, {"overlap": 0.5}):
        q = _data(_separate(stack, tok, t["id"], "htdemucs_tiny", **extra), 202)
        # overlap 0.5 is twice the segments: about 190 s on the CUDA emulator's stack
        assert _wait(stack, tok, q["job_id"], seconds=480)["status"] == "completed"
        params = _data(stack.get(f"/api/jobs/{q['job_id']}", token=tok), 200)["params"]
        assert params["seed"] == extra.get("seed", 0) and params["overlap"] == extra.get("overlap", 0.25), params
        done = _data(stack.get(f"/api/processing/job/{q['job_id']}", token=tok), 200)
        other = {st["stem"]: stack.get(st["url"], token=tok).content for st in done["stems"]}
        assert other["vocals"] != stems[0]["vocals"], extra


def test_request_errors(stack, token, upload, tmp_path):
    tok = token()
    t = _data(upload(tok, _music(tmp_path / "e.wav", seconds=0.5)), 201)
    r = _separate(stack, tok, t["id"], "no_such_model")
    assert r.status_code == 422 and r.json()["code"] == "VALIDATION_ERROR", r.text
    assert "model" in r.json()["details"]
    r = _separate(stack, tok, str(uuid.uuid4()), "hpss")
    assert r.status_code == 404, r.text
    r = stack.post("/api/processing/separate", token=tok, json={"track_id": t["id"], "engine": "lalalai"})
    assert r.status_code == 501 and r.json()["code"] == "NOT_IMPLEMENTED", r.text
    assert "lalalai is not available" in r.json()["error"]
    r = stack.post("/api/processing/separate", token=tok, json={"track_id": t["id"], "engine": "other"})
    assert r.status_code == 422, r.text
    if not (_model_dir(stack) / "955717e8-8726e21a.th").exists():
        r = _separate(stack, tok, t["id"], "htdemucs")
        assert r.status_code == 422 and r.json()["code"] == "MODEL_NOT_INSTALLED", r.text
        assert "demix models fetch htdemucs" in r.json()["error"]
        assert r.json()["details"]["command"] == "demix models fetch htdemucs"
    r = stack.post("/api/processing/separate", token=tok, json={"model": "hpss"})
    assert r.status_code == 422, r.text
    tok2 = token(user=None)  # a fresh api_heavy window; bad values are refused before the track is looked up
    for field, bad in (("overlap", 0.95), ("overlap", -0.1), ("overlap", "half"), ("seed", -1), ("seed", 1.5),
                       ("seed", 2 ** 60)):
        r = _separate(stack, tok2, t["id"], "hpss", **{field: bad})
        assert r.status_code == 422 and field in r.json()["details"], (field, bad, r.text)
    assert stack.get(f"/api/processing/job/{uuid.uuid4()}", token=tok).status_code == 404
    assert stack.get(f"/export/stem/{uuid.uuid4()}", token=tok).status_code == 404
    r = stack.get(f"/export/stems/{t['id']}", token=tok)
    assert r.status_code == 404 and r.json()["code"] == "NOT_FOUND", r.text  # no stems yet
    assert r.headers["Content-Type"].startswith("application/json")
    r = stack.get(f"/export/stems/{uuid.uuid4()}", token=tok)
    assert r.status_code == 404 and r.json()["code"] == "NOT_FOUND", r.text


def _job_count(stack, tok):
    return stack.get("/api/jobs", token=tok).json()["meta"]["total_count"]


def test_bulk_separation(stack, token, upload, tmp_path):
    """track_ids queues one job per track with the same settings, all or none."""
    user = f"bulk-{uuid.uuid4().hex[:8]}"
    tok = token(user=user)
    ids = [_data(upload(tok, _music(tmp_path / f"b{i}.wav", seconds=1.0 + 0.5 * i)), 201)["id"] for i in range(3)]
    r = stack.post("/api/processing/separate", token=tok,
                   json={"track_ids": ids, "model": "hpss", "format": "flac", "seed": 3})
    jobs = _data(r, 202)["jobs"]
    assert "Location" not in r.headers
    assert [j["track_id"] for j in jobs] == ids
    assert all(j["model"] == "hpss" and j["format"] == "flac" and j["status"] == "queued" for j in jobs)
    assert len({j["job_id"] for j in jobs}) == 3
    for i, j in enumerate(jobs):
        done = _wait(stack, tok, j["job_id"])
        assert done["status"] == "completed", done
        assert done["format"] == "flac" and {s["stem"] for s in done["stems"]} == {"harmonic", "percussive"}
        assert all(s["duration"] == pytest.approx(1.0 + 0.5 * i, abs=1e-3) for s in done["stems"])
        assert _data(stack.get(f"/api/jobs/{j['job_id']}", token=tok), 200)["params"]["seed"] == 3
    assert _job_count(stack, tok) == 3

    # all or none: an unknown track, or another user's, is named and nothing is queued
    other = token()
    theirs = _data(upload(other, _music(tmp_path / "o.wav", seconds=0.5)), 201)["id"]
    missing = str(uuid.uuid4())
    r = stack.post("/api/processing/separate", token=tok, json={"track_ids": [ids[0], missing, theirs], "model": "hpss"})
    assert r.status_code == 404 and r.json()["code"] == "NOT_FOUND", r.text
    assert r.json()["details"]["track_ids"] == [missing, theirs]
    assert _job_count(stack, tok) == 3
    tok2 = token(user=None)  # a fresh api_heavy window for the refusals
    for body in ({"track_ids": []}, {"track_ids": ids[0]}, {"track_ids": [ids[0], ids[0]]}, {"track_ids": [1]},
                 {"track_ids": [str(uuid.uuid4()) for _ in range(101)]},
                 {"track_id": ids[0], "track_ids": [ids[1]]}, {"track_ids": ids, "format": "ogg"}):
        r = stack.post("/api/processing/separate", token=tok2, json={"model": "hpss", **body})
        assert r.status_code == 422 and r.json()["code"] == "VALIDATION_ERROR", (body, r.text)
        assert set(r.json()["details"]) <= {"track_ids", "format"}, r.text
    # one heavy request however many tracks: the bucket counts requests
    tok3 = token(user=user)
    got = []
    for n in (3, 2):
        r = stack.post("/api/processing/separate", token=tok3, json={"track_ids": ids[:n], "model": "hpss"})
        assert len(_data(r, 202)["jobs"]) == n
        got.append((int(r.headers["X-RateLimit-Remaining"]), int(r.headers["X-RateLimit-Reset"])))
    if got[0][1] == got[1][1]:  # both in one window
        assert got[0][0] - got[1][0] == 1, got
    assert _job_count(stack, tok) == 8


def test_corrupt_checkpoint_fails_job_engine_survives(stack, token, upload, tmp_path):
    bad = _model_dir(stack) / "broken_ckpt.th"
    bad.write_bytes(b"PK\x03\x04" + os.urandom(2000))
    try:
        tok = token()
        t = _data(upload(tok, _music(tmp_path / "c.wav", seconds=1.0)), 201)
        j = _data(_separate(stack, tok, t["id"], "broken_ckpt"), 202)
        done = _wait(stack, tok, j["job_id"])
        assert done["status"] == "failed", done
        assert "broken_ckpt.th" in done["error"] and "cannot load" in done["error"], done["error"]
        assert done["stems"] == [] and done["archive_url"] is None
        assert not (stack.storage_dir / f"stems/{j['job_id']}").exists()
        assert stack.sql(f"SELECT COUNT(*) FROM stem_archives WHERE job_id = '{j['job_id']}'") == [("0",)]
        # the engine keeps serving
        j2 = _data(_separate(stack, tok, t["id"], "hpss"), 202)
        assert _wait(stack, tok, j2["job_id"])["status"] == "completed"
    finally:
        bad.unlink(missing_ok=True)


def test_cli_hpss_matches_librosa(stack, tmp_path):
    librosa = pytest.importorskip("librosa")
    rate = 44100
    t = np.arange(int(2.5 * rate)) / rate
    y = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 660 * t) * (t > 1)).astype(np.float32)
    y[::5000] += 0.5
    sf.write(str(tmp_path / "y.wav"), np.stack([y, y], axis=1), rate, subtype="FLOAT")
    out = stack.demix("separate", "-n", "hpss", "--float32", "-o", str(tmp_path / "out"), str(tmp_path / "y.wav"))
    assert out.returncode == 0, out.stderr
    h, _ = sf.read(str(tmp_path / "out/hpss/y/harmonic.wav"), dtype="float32")
    p, _ = sf.read(str(tmp_path / "out/hpss/y/percussive.wav"), dtype="float32")
    rh, rp = librosa.effects.hpss(y)
    assert np.linalg.norm(h[:, 0] - rh) / np.linalg.norm(rh) < 1e-4
    assert np.linalg.norm(p[:, 0] - rp) / np.linalg.norm(rp) < 1e-4


def test_deleting_a_track_removes_its_stems(stack, token, upload, tmp_path):
    tok = token()
    t = _data(upload(tok, _music(tmp_path / "d.wav", seconds=1.0)), 201)
    j = _wait(stack, tok, _data(_separate(stack, tok, t["id"], "hpss"), 202)["job_id"])
    assert j["status"] == "completed", j
    stem_dir = stack.storage_dir / f"stems/{j['id']}"
    assert (stem_dir / "harmonic.wav").is_file()
    assert stack.delete(f"/api/tracks/{t['id']}", token=tok).status_code == 204
    assert not stem_dir.exists()
    assert not (stack.storage_dir / f"tracks/{t['id']}").exists()
    assert stack.sql(f"SELECT COUNT(*) FROM stems WHERE job_id = '{j['id']}'") == [("0",)]
    assert stack.sql(f"SELECT COUNT(*) FROM stem_archives WHERE job_id = '{j['id']}'") == [("0",)]
    assert stack.get(f"/files/stems/{j['id']}/harmonic.wav", token=tok).status_code == 404
