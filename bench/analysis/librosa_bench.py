"""librosa side of the analysis benchmark: the same features demix computes
(MFCC, chroma_stft with tuning 0, spectral centroid / bandwidth / rolloff /
flatness / contrast, RMS, zero-crossing rate, onset strength, beat_track),
each from librosa's own call as a user would write it, on the same files.
Loading is what librosa.load(f, sr=22050) does, written out so its parts
are timed apart: decode with soundfile (float32), librosa.to_mono, then
librosa.resample(..., res_type="soxr_hq") to 22,050 Hz. Prints one JSON
line like bench_analysis.

usage: librosa_bench.py FILE...
"""
import json
import sys
import time

import numpy as np
import librosa
import soundfile as sf


def features(y, sr):
    S = np.abs(librosa.stft(y))
    out = {
        "mfcc": librosa.feature.mfcc(y=y, sr=sr),
        "chroma": librosa.feature.chroma_stft(S=S**2, sr=sr, tuning=0.0),
        "centroid": librosa.feature.spectral_centroid(S=S, sr=sr),
        "bandwidth": librosa.feature.spectral_bandwidth(S=S, sr=sr),
        "rolloff": librosa.feature.spectral_rolloff(S=S, sr=sr),
        "flatness": librosa.feature.spectral_flatness(S=S),
        "contrast": librosa.feature.spectral_contrast(S=S, sr=sr),
        "rms": librosa.feature.rms(y=y),
        "zcr": librosa.feature.zero_crossing_rate(y),
    }
    env = librosa.onset.onset_strength(y=y, sr=sr)
    out["tempo"], out["beats"] = librosa.beat.beat_track(onset_envelope=env, sr=sr)
    return {k: np.mean(v) for k, v in out.items()}


def load(f, sr=22050):
    """librosa.load(f, sr=sr) step by step: returns (y, decode_s, resample_s)."""
    t0 = time.perf_counter()
    x, sr0 = sf.read(f, dtype="float32", always_2d=True)
    t1 = time.perf_counter()
    y = librosa.to_mono(x.T)
    if sr0 != sr:
        y = librosa.resample(y, orig_sr=sr0, target_sr=sr, res_type="soxr_hq")
    return y, t1 - t0, time.perf_counter() - t1


def main(files):
    # warm-up (numba compiles on first use), not counted
    y, _, _ = load(files[0])
    features(y, 22050)
    audio = load_s = feat_s = dec_s = res_s = 0.0
    for f in files:
        audio += sf.info(f).duration
        y, d, r = load(f)
        t1 = time.perf_counter()
        features(y, 22050)
        t2 = time.perf_counter()
        dec_s += d
        res_s += r
        load_s += d + r
        feat_s += t2 - t1
    n = len(files)
    total = load_s + feat_s
    print(json.dumps({"impl": "librosa " + librosa.__version__, "device": "cpu", "tracks": n,
                      "audio_s": round(audio, 1), "load_s": round(load_s, 3), "decode_s": round(dec_s, 3),
                      "resample_s": round(res_s, 3), "features_s": round(feat_s, 3),
                      "total_s": round(total, 3), "s_per_track": round(total / n, 4),
                      "features_s_per_track": round(feat_s / n, 4),
                      "x_realtime": round(audio / total, 1)}))


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.stderr.write(__doc__)
        sys.exit(2)
    main(sys.argv[1:])
