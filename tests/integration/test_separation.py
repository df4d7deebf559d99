"""Stem separation through nginx: POST /api/processing/separate runs a
`separate` job on the stack's demixd with hpss and with the kit's
htdemucs_tiny placed in the model folder; one stem and the ZIP of a track's
stems download through /export; hpss stems add back to the mix; unknown
model 422, missing track 404, lalalai 501, a model without weights 422
MODEL_NOT_INSTALLED; a corrupt checkpoint fails its job with a clear error
and the engine keeps serving. Also `demix separate -n hpss` against librosa."""

import io
import os
import pathlib
import shutil
import subprocess
import time
import uuid
import zipfile

import numpy as np
import pytest
import soundfile as sf

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
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        j = _data(stack.get(f"/api/processing/job/{job_id}", token=tok), 200)
        if j["status"] in ("completed", "failed", "cancelled"):
            return j
        time.sleep(0.25)
    pytest.fail(f"job {job_id} still {j['status']} after {seconds}s")


def _music(path, seconds=3.0, rate=44100):
    """A tone with clicks, peak well below 1 so no stem is rescaled."""
    t = np.arange(int(seconds * rate)) / rate
    x = 0.25 * np.sin(2 * np.pi * 220 * t) + 0.1 * np.sin(2 * np.pi * 331 * t)
    x[:: rate // 4] += 0.3
    stereo = np.stack([x, 0.8 * x], axis=1).astype(np.float32)
    sf.write(str(path), stereo, rate, subtype="PCM_16")
    return path


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

    # the ZIP of the track's stems
    r = stack.get(f"/export/stems/{t['id']}", token=tok)
    assert r.status_code == 200, r.text[:300]
    z = zipfile.ZipFile(io.BytesIO(r.content))
    assert z.testzip() is None
    assert sorted(z.namelist()) == ["hpss/harmonic.wav", "hpss/percussive.wav"]
    zh, _ = sf.read(io.BytesIO(z.read("hpss/harmonic.wav")), dtype="float32")
    assert np.array_equal(zh, h)

    # someone else sees none of it
    other = token()
    assert stack.get(stems["harmonic"]["url"], token=other).status_code == 404
    assert stack.get(f"/export/stems/{t['id']}", token=other).status_code == 404
    assert stack.get(f"/api/processing/job/{j['job_id']}", token=other).status_code == 404


def test_htdemucs_tiny_job(stack, token, upload, tmp_path):
    src = KIT / "htdemucs_tiny.th"
    if not src.is_file():
        pytest.skip("reference kit not found")
    shutil.copy(src, _model_dir(stack) / "htdemucs_tiny.th")
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
    # the ZIP holds the newest stems of each model
    z = zipfile.ZipFile(io.BytesIO(stack.get(f"/export/stems/{t['id']}", token=tok).content))
    names = set(z.namelist())
    assert {"htdemucs_tiny/vocals.wav", "htdemucs_tiny/no_vocals.wav", "htdemucs_tiny/drums.wav"} <= names


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
    assert stack.get(f"/api/processing/job/{uuid.uuid4()}", token=tok).status_code == 404
    assert stack.get(f"/export/stem/{uuid.uuid4()}", token=tok).status_code == 404
    assert stack.get(f"/export/stems/{t['id']}", token=tok).status_code == 404  # no stems yet


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
        assert done["stems"] == []
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
