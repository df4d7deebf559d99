"""wavio.py: the WAV files bench/separate writes and reads (float32 or PCM),
with numpy only, so the benchmark runs where soundfile is not installed (a
GPU host with torch and numpy). Reads RIFF/WAVE with format 1 (PCM 16, 24
or 32 bits), 3 (IEEE float 32) or WAVE_FORMAT_EXTENSIBLE carrying either."""
import struct

import numpy as np


def write_float(path, x, rate):
    """x: [frames, channels] -> a 32-bit float WAV."""
    x = np.ascontiguousarray(x, dtype="<f4")
    frames, ch = x.shape
    data = x.tobytes()
    fmt = struct.pack("<HHIIHH", 3, ch, rate, rate * ch * 4, ch * 4, 32)
    with open(path, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", 4 + 8 + len(fmt) + 8 + len(data)) + b"WAVE")
        f.write(b"fmt " + struct.pack("<I", len(fmt)) + fmt)
        f.write(b"data" + struct.pack("<I", len(data)) + data)


def read(path):
    """-> (float32 [frames, channels], rate); PCM scaled to [-1, 1)."""
    with open(path, "rb") as f:
        b = f.read()
    if b[:4] != b"RIFF" or b[8:12] != b"WAVE":
        raise ValueError(f"{path}: not a RIFF/WAVE file")
    pos, fmt, data = 12, None, None
    while pos + 8 <= len(b):
        cid, size = b[pos:pos + 4], struct.unpack("<I", b[pos + 4:pos + 8])[0]
        body = b[pos + 8:pos + 8 + size]
        if cid == b"fmt ":
            fmt = body
        elif cid == b"data":
            data = body
        pos += 8 + size + (size & 1)
    if fmt is None or data is None:
        raise ValueError(f"{path}: no fmt or data chunk")
    tag, ch, rate, _, align, bits = struct.unpack("<HHIIHH", fmt[:16])
    if tag == 0xFFFE and len(fmt) >= 26:
        tag = struct.unpack("<H", fmt[24:26])[0]  # the sub-format GUID starts with the format tag
    frames = len(data) // align
    raw = np.frombuffer(data[:frames * align], dtype=np.uint8)
    if tag == 3 and bits == 32:
        x = raw.view("<f4")
    elif tag == 1 and bits == 16:
        x = raw.view("<i2").astype(np.float32) / 32768.0
    elif tag == 1 and bits == 24:
        t = raw.reshape(-1, 3).astype(np.int32)
        v = t[:, 0] | (t[:, 1] << 8) | (t[:, 2] << 16)
        x = (np.where(v >= 1 << 23, v - (1 << 24), v)).astype(np.float32) / float(1 << 23)
    elif tag == 1 and bits == 32:
        x = raw.view("<i4").astype(np.float32) / float(1 << 31)
    else:
        raise ValueError(f"{path}: unsupported WAV format {tag} with {bits} bits")
    return x.reshape(frames, ch).astype(np.float32), rate
