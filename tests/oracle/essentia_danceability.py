#!/usr/bin/env python3
"""Essentia's Danceability of WAV files (test oracle only).

usage: essentia_danceability.py OUT.json IN.wav...

Reads each IN.wav as written (the C tests write 22,050 Hz mono float WAVs)
and writes {"essentia_version", "files": {IN.wav: {"danceability", "dfa"}}}
from essentia.standard.Danceability at the file's own rate, its other
parameters at their defaults. The JSON is written atomically."""
import sys

import essentia
import essentia.standard as es
import soundfile as sf

from oracle_io import write_json


def main():
    if len(sys.argv) < 3:
        sys.stderr.write(__doc__)
        return 2
    essentia.log.infoActive = False
    essentia.log.warningActive = False
    dst, out = sys.argv[1], {"essentia_version": essentia.__version__, "files": {}}
    for src in sys.argv[2:]:
        y, sr = sf.read(src, dtype="float32", always_2d=True)
        d, dfa = es.Danceability(sampleRate=sr)(y.mean(axis=1).astype("float32"))
        out["files"][src] = {"danceability": float(d), "dfa": [float(v) for v in dfa]}
    write_json(dst, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
