"""Time the official Demucs long-track procedure on one checkpoint and one
track: outer normalisation + apply_model(split, overlap, shifts), as
`demucs.separate` does. Prints one JSON line: seconds, x-realtime, peak GPU
memory (torch.cuda.max_memory_allocated). Needs torch and the official
demucs package (DEMUCS_PY may name a folder holding demucs, julius, einops).

usage: official.py CHECKPOINT.th TRACK.wav DEVICE [SHIFTS] [OVERLAP]
"""
import json
import os
import sys
import time

if os.environ.get("DEMUCS_PY"):
    sys.path.insert(0, os.environ["DEMUCS_PY"])
import numpy as np
import soundfile as sf
import torch
from demucs.apply import apply_model
from demucs.states import load_model

ckpt, track, device = sys.argv[1], sys.argv[2], sys.argv[3]
shifts = int(sys.argv[4]) if len(sys.argv) > 4 else 1
overlap = float(sys.argv[5]) if len(sys.argv) > 5 else 0.25
torch.set_grad_enabled(False)
model = load_model(torch.load(ckpt, map_location="cpu")).eval()
x, rate = sf.read(track, dtype="float32", always_2d=True)
assert rate == model.samplerate, "write the track at the model's rate"
wav = torch.from_numpy(np.ascontiguousarray(x.T))
ref = wav.mean(0)
wav = (wav - ref.mean()) / (ref.std() + 1e-8)
if device == "cuda":
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
t0 = time.perf_counter()
out = apply_model(model, wav[None], device=device, shifts=shifts, split=True, overlap=overlap, progress=False)[0]
out = out * (ref.std() + 1e-8) + ref.mean()
if device == "cuda":
    torch.cuda.synchronize()
dt = time.perf_counter() - t0
peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None
print(json.dumps({"impl": "official", "device": device, "seconds": round(dt, 3),
                  "x_realtime": round(x.shape[0] / rate / dt, 2), "peak_gpu_mib": peak and round(peak, 1),
                  "torch": torch.__version__}))
