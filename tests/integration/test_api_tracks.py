"""Tracks through nginx: uploads in every format, bad uploads, pagination,
PATCH, DELETE, ownership and file downloads."""

import os
import time

import pytest
import soundfile as sf


def _data(r, status):
    assert r.status_code == status, (r.status_code, r.text[:500])
    assert r.headers["Content-Type"].startswith("application/json")
    return r.json()["data"]


def _storage_files(stack):
    root = stack.storage_dir
    out = set()
    for d, _, files in os.walk(root):
        for f in files:
            out.add(os.path.relpath(os.path.join(d, f), root))
    return out


def _track_count(stack):
    return int(stack.sql("SELECT COUNT(*) FROM tracks")[0][0])


@pytest.mark.parametrize("fmt", ["wav", "flac", "ogg", "mp3"])
def test_upload_each_format(stack, token, audio, upload, fmt):
    tok = token()
    path = audio(fmt, seconds=1.5, rate=44100, channels=2)
    t = _data(upload(tok, path, title=f"tone {fmt}"), 201)
    assert t["format"] == fmt
    assert t["sample_rate"] == 44100
    assert t["channels"] == 2
    assert t["duration"] == pytest.approx(1.5, abs=0.1)
    assert t["title"] == f"tone {fmt}"
    assert t["file_size"] == path.stat().st_size
    # The stored copy is byte-identical and the row points to it.
    rel = stack.sql(f"SELECT file_path FROM tracks WHERE id = '{t['id']}'")[0][0]
    assert (stack.storage_dir / rel).read_bytes() == path.read_bytes()
    again = _data(stack.get(f"/api/tracks/{t['id']}", token=tok), 200)
    assert again["id"] == t["id"] and again["format"] == fmt


def test_upload_mono_and_other_rate(stack, token, audio, upload):
    tok = token()
    path = audio("flac", seconds=2.0, rate=22050, channels=1)
    t = _data(upload(tok, path), 201)
    assert (t["sample_rate"], t["channels"]) == (22050, 1)
    assert t["duration"] == pytest.approx(2.0, abs=0.01)


def test_upload_raw_body(stack, token, audio):
    """The body may also be the audio itself, with the fields in the query."""
    tok = token()
    path = audio("wav", seconds=0.4)
    r = stack.post("/api/tracks?title=raw%20upload&artist=A", token=tok, data=path.read_bytes(),
                   headers={"Content-Type": "audio/wav"})
    t = _data(r, 201)
    assert (t["title"], t["artist"], t["format"]) == ("raw upload", "A", "wav")
    assert t["file_size"] == path.stat().st_size


def test_text_file_is_415_and_nothing_stored(stack, token, upload, tmp_path):
    tok = token()
    p = tmp_path / "notes.txt"
    p.write_text("these are not the droids you are looking for\n" * 50)
    before_rows, before_files = _track_count(stack), _storage_files(stack)
    r = upload(tok, p)
    assert r.status_code == 415, r.text
    assert isinstance(r.json()["code"], str) and r.json()["error"]
    assert _track_count(stack) == before_rows
    assert _storage_files(stack) == before_files


@pytest.mark.parametrize("cut", ["header", "data"])
def test_truncated_wav_is_422_and_nothing_stored(stack, token, audio, upload, tmp_path, cut):
    tok = token()
    whole = audio("wav", seconds=1.0).read_bytes()
    p = tmp_path / "cut.wav"
    p.write_bytes(whole[:30] if cut == "header" else whole[: len(whole) // 2 + 1])
    before_rows, before_files = _track_count(stack), _storage_files(stack)
    r = upload(tok, p)
    assert r.status_code == 422, r.text
    body = r.json()
    assert isinstance(body["code"], str) and body["error"]
    assert _track_count(stack) == before_rows
    assert _storage_files(stack) == before_files


def test_pagination_newest_first(stack, token, audio, upload):
    tok = token()
    ids = []
    for i in range(7):
        path = audio("wav", seconds=0.2, freq=220 + 40 * i, name=f"p{i}.wav")
        ids.append(_data(upload(tok, path, title=f"p{i}"), 201)["id"])
        time.sleep(0.01)
    newest_first = list(reversed(ids))
    seen = []
    for page in (1, 2, 3):
        r = stack.get(f"/api/tracks?page={page}&page_size=3", token=tok)
        assert r.status_code == 200, r.text
        doc = r.json()
        assert doc["meta"] == {"page": page, "page_size": 3, "total_count": 7, "total_pages": 3}
        assert len(doc["data"]) == (3 if page < 3 else 1)
        seen += [t["id"] for t in doc["data"]]
    assert seen == newest_first
    doc = stack.get("/api/tracks?page=4&page_size=3", token=tok).json()
    assert doc["data"] == [] and doc["meta"]["total_count"] == 7 and doc["meta"]["total_pages"] == 3
    r = stack.get("/api/tracks?page_size=5", token=tok)
    doc = r.json()
    assert doc["meta"]["page"] == 1 and doc["meta"]["total_pages"] == 2
    assert [t["id"] for t in doc["data"]] == newest_first[:5]
    # nginx compresses JSON bodies of a few KiB (requests asks for gzip).
    if len(r.content) > 2048:
        assert r.headers.get("Content-Encoding") == "gzip"


@pytest.mark.parametrize("query", ["page=0", "page=-1", "page=abc", "page_size=0", "page_size=100000"])
def test_bad_pagination_is_400(stack, token, query):
    r = stack.get(f"/api/tracks?{query}", token=token())
    assert r.status_code in (400, 422), (query, r.text)
    assert isinstance(r.json()["code"], str)


def test_patch_track(stack, token, audio, upload):
    tok = token()
    t = _data(upload(tok, audio("wav", seconds=0.3)), 201)
    r = stack.patch(f"/api/tracks/{t['id']}", token=tok,
                    json={"title": "Renamed", "artist": "Someone", "bpm": 121.5, "tags": ["a", "b"]})
    p = _data(r, 200)
    assert p["title"] == "Renamed" and p["artist"] == "Someone"
    assert p["bpm"] == pytest.approx(121.5) and p["tags"] == ["a", "b"]
    g = _data(stack.get(f"/api/tracks/{t['id']}", token=tok), 200)
    assert (g["title"], g["artist"], g["tags"]) == ("Renamed", "Someone", ["a", "b"])
    assert g["duration"] == t["duration"] and g["file_size"] == t["file_size"]
    row = stack.sql(f"SELECT title, bpm_source FROM tracks WHERE id = '{t['id']}'")[0]
    assert row == ("Renamed", "user")


def test_patch_malformed_json_is_400(stack, token, audio, upload):
    tok = token()
    t = _data(upload(tok, audio("wav", seconds=0.2)), 201)
    r = stack.patch(f"/api/tracks/{t['id']}", token=tok, data=b'{"title": "x",',
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert isinstance(r.json()["code"], str)
    assert _data(stack.get(f"/api/tracks/{t['id']}", token=tok), 200)["title"] == t["title"]


def test_patch_invalid_values_is_422(stack, token, audio, upload):
    tok = token()
    t = _data(upload(tok, audio("wav", seconds=0.2)), 201)
    r = stack.patch(f"/api/tracks/{t['id']}", token=tok, json={"bpm": "fast"})
    assert r.status_code in (400, 422), r.text
    body = r.json()
    assert isinstance(body["code"], str)


def test_delete_removes_row_and_files(stack, token, audio, upload):
    tok = token()
    t = _data(upload(tok, audio("flac", seconds=0.3)), 201)
    rel = stack.sql(f"SELECT file_path FROM tracks WHERE id = '{t['id']}'")[0][0]
    assert (stack.storage_dir / rel).exists()
    r = stack.delete(f"/api/tracks/{t['id']}", token=tok)
    assert r.status_code == 204, r.text
    assert r.content == b""
    assert not (stack.storage_dir / rel).exists()
    assert not any(t["id"] in f for f in _storage_files(stack))
    assert stack.sql(f"SELECT COUNT(*) FROM tracks WHERE id = '{t['id']}'") == [("0",)]
    assert stack.get(f"/api/tracks/{t['id']}", token=tok).status_code == 404
    assert stack.delete(f"/api/tracks/{t['id']}", token=tok).status_code == 404


def test_other_users_track_is_404(stack, token, audio, upload):
    owner, other = token(), token()
    path = audio("wav", seconds=0.3)
    t = _data(upload(owner, path), 201)
    tid = t["id"]
    for method, kw in (("GET", {}), ("PATCH", {"json": {"title": "mine now"}}), ("DELETE", {})):
        r = stack.request(method, f"/api/tracks/{tid}", token=other, **kw)
        assert r.status_code == 404, (method, r.text)
        assert r.json()["code"] == "NOT_FOUND"
    r = stack.get(f"/files/tracks/{tid}/original.wav", token=other)
    assert r.status_code == 404
    assert tid not in [x["id"] for x in stack.get("/api/tracks", token=other).json()["data"]]
    # Still there, unchanged, for its owner.
    g = _data(stack.get(f"/api/tracks/{tid}", token=owner), 200)
    assert g["title"] == t["title"]


def test_unknown_and_malformed_track_ids_are_404(stack, token):
    tok = token()
    for tid in ("00000000-0000-4000-8000-000000000000", "not-a-uuid", "%27%20OR%201%3D1"):
        r = stack.get(f"/api/tracks/{tid}", token=tok)
        assert r.status_code in (400, 404), (tid, r.text)
        assert isinstance(r.json()["code"], str)


@pytest.mark.parametrize("fmt", ["wav", "mp3"])
def test_file_download_through_nginx(stack, token, audio, upload, fmt):
    tok = token()
    path = audio(fmt, seconds=0.5)
    t = _data(upload(tok, path), 201)
    assert t["file_url"] == f"/files/tracks/{t['id']}/original.{fmt}"
    r = stack.get(t["file_url"], token=tok)
    assert r.status_code == 200, r.text[:300]
    assert r.content == path.read_bytes()
    assert "X-Accel-Redirect" not in r.headers
    assert int(r.headers["Content-Length"]) == path.stat().st_size
    # The internal location itself is not reachable from outside.
    rel = stack.sql(f"SELECT file_path FROM tracks WHERE id = '{t['id']}'")[0][0]
    assert stack.get(f"/_storage/{rel}", token=tok).status_code == 404
    assert stack.get(f"/files/tracks/{t['id']}/original.{fmt}", token=None).status_code == 401


def test_downloaded_audio_decodes(stack, token, audio, upload, tmp_path):
    tok = token()
    path = audio("flac", seconds=0.5, freq=330)
    t = _data(upload(tok, path), 201)
    r = stack.get(f"/files/tracks/{t['id']}/original.flac", token=tok)
    out = tmp_path / "back.flac"
    out.write_bytes(r.content)
    a, ra = sf.read(str(path))
    b, rb = sf.read(str(out))
    assert ra == rb and a.shape == b.shape and (a == b).all()
