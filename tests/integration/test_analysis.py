"""Analysis through nginx: POST /api/analysis/analyze, the job's progress and
result, the stored analysis and its export document (seed 002), the track's
bpm and key filled (but a user's own bpm kept), a track past 20 minutes (the
streamed path, its signal in a scratch file under storage_dir/tmp that never
outlives the job), and the errors: an unknown track (404), an unknown
feature (422) and a damaged file (the job fails with a readable error and the
track row is left as it was)."""

import json

import numpy as np
import pytest
import soundfile as sf

from conftest import wait_job


def _data(r, status):
    assert r.status_code == status, (r.status_code, r.text[:500])
    assert r.headers["Content-Type"].startswith("application/json")
    return r.json()["data"]


def _song(path, seconds=8.0, rate=44100, bpm=120.0):
    """A minor chords (A C E) with a kick on every beat and a little noise."""
    n = int(seconds * rate)
    t = np.arange(n) / rate
    x = sum(0.12 * np.sin(2 * np.pi * f * t) for f in (220.0, 261.63, 329.63, 440.0))
    beat = int(rate * 60.0 / bpm)
    k = np.arange(int(0.12 * rate)) / rate
    kick = 0.6 * np.sin(2 * np.pi * (50 + 60 * np.exp(-k / 0.03)) * k) * np.exp(-k / 0.05)
    for s in range(int(0.05 * rate), n - len(kick), beat):
        x[s:s + len(kick)] += kick
    x += 0.003 * np.random.default_rng(7).standard_normal(n)
    stereo = np.stack([x, 0.8 * x], axis=1).astype(np.float32)
    sf.write(str(path), stereo, rate, subtype="PCM_16")
    return path


def _analyze(stack, tok, track_id, features=("all",)):
    return stack.post("/api/analysis/analyze", token=tok, json={"track_id": track_id, "features": list(features)})


def _wait(stack, tok, job_id, seconds=120):
    return wait_job(stack, tok, f"/api/analysis/job/{job_id}", seconds)


def _track_row(stack, tid):
    return stack.sql(f"SELECT bpm, bpm_source, musical_key, key_source, duration, file_path FROM tracks"
                     f" WHERE id = '{tid}'")[0]


def test_analyze_end_to_end(stack, token, upload, tmp_path):
    tok = token()
    t = _data(upload(tok, _song(tmp_path / "song.wav")), 201)
    j = _data(_analyze(stack, tok, t["id"]), 202)
    assert j["status"] == "queued" and j["track_id"] == t["id"] and j["job_id"]
    done = _wait(stack, tok, j["job_id"])
    assert done["status"] == "completed", done
    assert done["progress"] == 100 and done["error"] is None
    res = done["result"]
    assert 60 <= res["tempo"] <= 200
    assert abs(res["tempo"] - 120.0) < 3 or abs(res["tempo"] - 60.0) < 2, res["tempo"]
    assert isinstance(res["key"], str) and res["key"].split()[-1] in ("major", "minor")
    assert res["camelot"][:-1].isdigit() and res["camelot"][-1] in "AB"
    assert 0 <= res["energy"] <= 1
    assert 0 < res["danceability"] < 10  # a strict drum loop: far above noise's 2
    loud = res["loudness"]
    assert -40 < loud["integrated_lufs"] < 0 and loud["loudness_range"] >= 0 and loud["true_peak_dbtp"] < 1
    assert res["spectral_centroid"] > 0 and res["spectral_rolloff"] > 0 and 0 <= res["zero_crossing_rate"] < 1
    mfcc, chroma = res["features"]["mfcc"], res["features"]["chroma"]
    assert len(mfcc) == 2 and len(mfcc[0]) == 20 and all(isinstance(v, (int, float)) for v in mfcc[0])
    assert len(chroma) >= 1 and len(np.ravel(chroma)) >= 12
    assert res["duration"] == pytest.approx(8.0, abs=1e-3)

    # the stored analysis
    a = _data(stack.get(f"/api/analysis/{t['id']}", token=tok), 200)
    assert a["track_id"] == t["id"] and a["job_id"] == j["job_id"]
    assert a["result"]["tempo"] == res["tempo"] and a["result"]["key"] == res["key"]

    # the export document of seed 002: no envelope, an attachment
    r = stack.get(f"/export/analysis/{t['id']}", token=tok)
    assert r.status_code == 200, r.text[:300]
    assert r.headers["Content-Type"].startswith("application/json")
    assert "attachment" in r.headers.get("Content-Disposition", "")
    doc = json.loads(r.content)
    assert doc["track_id"] == t["id"] and "title" in doc and "artist" in doc
    assert doc["analysis"]["tempo"] == res["tempo"] and doc["analysis"]["key"] == res["key"]
    assert "features" in doc["analysis"] and doc["analysis"]["energy"] == res["energy"]

    # the track got its bpm and key from the analysis
    g = _data(stack.get(f"/api/tracks/{t['id']}", token=tok), 200)
    assert g["bpm"] == pytest.approx(res["tempo"], abs=0.01) and g["key"] == res["key"]
    row = _track_row(stack, t["id"])
    assert row[1] == "analysis" and row[3] == "analysis"

    # a user's own bpm survives a second analysis
    _data(stack.patch(f"/api/tracks/{t['id']}", token=tok, json={"bpm": 97.5}), 200)
    j2 = _data(_analyze(stack, tok, t["id"], ["tempo", "key"]), 202)
    done2 = _wait(stack, tok, j2["job_id"])
    assert done2["status"] == "completed", done2
    g = _data(stack.get(f"/api/tracks/{t['id']}", token=tok), 200)
    assert g["bpm"] == pytest.approx(97.5) and g["key"] == res["key"]
    assert _track_row(stack, t["id"])[1] == "user"
    # the latest analysis is the second one, with only its groups
    a2 = _data(stack.get(f"/api/analysis/{t['id']}", token=tok), 200)
    assert a2["job_id"] == j2["job_id"] and "tempo" in a2["result"] and "mfcc" not in a2["result"]


def test_unknown_track_is_404(stack, token):
    tok = token()
    r = _analyze(stack, tok, "00000000-0000-4000-8000-000000000000")
    assert r.status_code == 404, r.text[:300]
    assert isinstance(r.json()["code"], str)
    r = stack.get("/api/analysis/00000000-0000-4000-8000-000000000000", token=tok)
    assert r.status_code == 404


def test_unknown_feature_is_422(stack, token, upload, audio):
    tok = token()
    t = _data(upload(tok, audio("wav", seconds=1.0)), 201)
    r = _analyze(stack, tok, t["id"], ["tempo", "loudness-war"])
    assert r.status_code == 422, r.text[:300]
    assert "loudness-war" in r.text
    # nothing was queued for the track
    assert int(stack.sql(f"SELECT COUNT(*) FROM jobs WHERE track_id = '{t['id']}'")[0][0]) == 0


def test_damaged_file_fails_and_leaves_track(stack, token, upload, tmp_path):
    tok = token()
    t = _data(upload(tok, _song(tmp_path / "song.wav", seconds=3.0)), 201)
    before = _track_row(stack, t["id"])
    stored = stack.storage_dir / before[5]
    assert stored.is_file()
    # cut the stored WAV to a third: its header still promises all the frames
    data = stored.read_bytes()
    stored.write_bytes(data[: len(data) // 3])
    j = _data(_analyze(stack, tok, t["id"]), 202)
    done = _wait(stack, tok, j["job_id"])
    assert done["status"] == "failed", done
    err = done["error"]
    assert isinstance(err, str) and len(err) > 10 and "analysis" in err.lower(), err
    assert str(stack.storage_dir) not in err
    assert done["result"] is None
    assert _track_row(stack, t["id"]) == before
    assert stack.get(f"/api/analysis/{t['id']}", token=tok).status_code == 404


def _scratch_files(stack):
    tmp = stack.storage_dir / "tmp"
    return sorted(p.name for p in tmp.glob(".analysis.scratch.*")) if tmp.is_dir() else []


@pytest.mark.long_audio
def test_long_track_streams(stack, token, upload, tmp_path):
    """21 minutes at 8 kHz (past the 20 minutes from which a file is decoded
    block by block and its 22,050 Hz signal waits in a scratch file): the
    job completes with the short track's answers, and cut short, fails
    cleanly; no scratch file is left either way."""
    tok = token()
    t = _data(upload(tok, _song(tmp_path / "long.wav", seconds=1260.0, rate=8000)), 201)
    j = _data(_analyze(stack, tok, t["id"]), 202)
    done = _wait(stack, tok, j["job_id"], seconds=300)
    assert done["status"] == "completed", done
    res = done["result"]
    assert res["duration"] == pytest.approx(1260.0, abs=1e-3) and res["sample_rate"] == 8000
    assert abs(res["tempo"] - 120.0) < 3 or abs(res["tempo"] - 60.0) < 2, res["tempo"]
    assert res["key"] in ("A minor", "C major"), res["key"]
    assert -40 < res["loudness"]["integrated_lufs"] < 0
    assert _scratch_files(stack) == []

    stored = stack.storage_dir / _track_row(stack, t["id"])[5]
    data = stored.read_bytes()
    stored.write_bytes(data[: len(data) // 2])
    j = _data(_analyze(stack, tok, t["id"]), 202)
    done = _wait(stack, tok, j["job_id"], seconds=300)
    assert done["status"] == "failed" and "analysis" in done["error"].lower(), done
    assert _scratch_files(stack) == []
