#!/usr/bin/env python3
"""librosa reference values for demix's analysis features (test oracle only).

usage: librosa_features.py IN.wav OUT.json

Reads IN.wav at its own rate (the C tests write 22,050 Hz mono float WAVs,
so nothing is resampled) and writes, with librosa's defaults (n_fft 2048,
hop 512, centred STFT with zero padding, 128 Slaney mels, 20 MFCCs with
top_db 80, chroma_stft with tuning=0.0 as demix uses), the means and
population standard deviations over frames of: mfcc, chroma, spectral
centroid / bandwidth / rolloff (0.85) / flatness / contrast, rms,
zero-crossing rate, plus the onset-strength envelope and librosa's own
beat_track tempo for information. The JSON is written atomically."""
import sys

import numpy as np
import soundfile as sf
import librosa

from oracle_io import write_json


def stats(x):
    x = np.asarray(x, dtype=np.float64)
    return {"mean": x.mean(axis=-1).tolist(), "std": x.std(axis=-1).tolist()}


def main():
    if len(sys.argv) != 3:
        sys.stderr.write(__doc__)
        return 2
    src, dst = sys.argv[1], sys.argv[2]
    y, sr = sf.read(src, dtype="float32", always_2d=True)
    y = np.ascontiguousarray(y.mean(axis=1, dtype=np.float32))
    out = {"librosa_version": librosa.__version__, "sample_rate": sr, "samples": int(len(y))}
    S = np.abs(librosa.stft(y))
    out["frames"] = int(S.shape[1])
    out["mfcc"] = stats(librosa.feature.mfcc(y=y, sr=sr))
    out["chroma"] = stats(librosa.feature.chroma_stft(y=y, sr=sr, tuning=0.0))
    out["spectral_centroid"] = stats(librosa.feature.spectral_centroid(y=y, sr=sr)[0])
    out["spectral_bandwidth"] = stats(librosa.feature.spectral_bandwidth(y=y, sr=sr)[0])
    out["spectral_rolloff"] = stats(librosa.feature.spectral_rolloff(y=y, sr=sr)[0])
    out["spectral_flatness"] = stats(librosa.feature.spectral_flatness(y=y)[0])
    out["spectral_contrast"] = stats(librosa.feature.spectral_contrast(y=y, sr=sr))
    out["rms"] = stats(librosa.feature.rms(y=y)[0])
    out["zero_crossing_rate"] = stats(librosa.feature.zero_crossing_rate(y)[0])
    env = librosa.onset.onset_strength(y=y, sr=sr)
    out["onset_env"] = [float(v) for v in env]
    tempo, _ = librosa.beat.beat_track(onset_envelope=env, sr=sr)
    out["librosa_tempo"] = float(np.atleast_1d(tempo)[0])
    write_json(dst, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
