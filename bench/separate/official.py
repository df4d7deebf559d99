"""Time the official Demucs long-track procedure on one checkpoint and one
track: outer normalisation + apply_model(split, overlap, shifts), as
`demucs.separate` does. Prints one JSON line: seconds (the procedure alone,
model loaded), x-realtime, torch threads, peak GPU memory
(torch.cuda.max_memory_allocated). Needs torch and the official demucs
package (DEMUCS_PY may name a folder holding demucs, julius, einops, ...:
tools/official-demucs makes one; see official_env.py).

usage: official.py CHECKPOINT.th TRACK.wav DEVICE [SHIFTS] [OVERLAP]
                   [--threads N] [--seed N] [--save OUT.f32] [--precision P]
  --threads N   torch.set_num_threads(N) (CPU; default: torch's own choice)
  --precision P exact: no TF32 anywhere (cudnn.allow_tf32 and
                cuda.matmul.allow_tf32 off); default: torch's own settings
                (on a GPU: TF32 convolutions, float32 matrix products)
  --seed N      random.seed(N) before apply_model (the shift offsets)
  --save PATH   write the stems as raw float32 [sources][channels][samples]
                and PATH.json with the source names
"""
import argparse
import json
import random
import time

import official_env  # noqa: F401  (beside this script: DEMUCS_PY, torchaudio)
import numpy as np
import torch
from demucs.apply import apply_model
from demucs.states import load_model

import wavio  # beside this script

ap = argparse.ArgumentParser()
ap.add_argument("ckpt")
ap.add_argument("track")
ap.add_argument("device")
ap.add_argument("shifts", nargs="?", type=int, default=1)
ap.add_argument("overlap", nargs="?", type=float, default=0.25)
ap.add_argument("--threads", type=int, default=0)
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--save", default="")
ap.add_argument("--precision", choices=["exact", "default"], default="exact")
a = ap.parse_args()

if a.precision == "exact":
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
tf32 = {"cudnn": torch.backends.cudnn.allow_tf32, "matmul": torch.backends.cuda.matmul.allow_tf32}

if a.threads > 0:
    torch.set_num_threads(a.threads)
torch.set_grad_enabled(False)
random.seed(a.seed)
# the checkpoint holds the model class and its arguments, not only tensors
model = load_model(torch.load(a.ckpt, map_location="cpu", weights_only=False)).eval()
x, rate = wavio.read(a.track)
assert rate == model.samplerate, "write the track at the model's rate"
wav = torch.from_numpy(np.ascontiguousarray(x.T))
if a.device == "cuda":
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
t0 = time.perf_counter()
ref = wav.mean(0)
wav = (wav - ref.mean()) / (ref.std() + 1e-8)
out = apply_model(model, wav[None], device=a.device, shifts=a.shifts, split=True, overlap=a.overlap,
                  progress=False)[0]
out = out * (ref.std() + 1e-8) + ref.mean()
if a.device == "cuda":
    torch.cuda.synchronize()
dt = time.perf_counter() - t0
peak = torch.cuda.max_memory_allocated() / 2**20 if a.device == "cuda" else None
if a.save:
    out.cpu().float().numpy().astype("<f4").tofile(a.save)
    with open(a.save + ".json", "w") as f:
        json.dump({"sources": list(model.sources), "shape": list(out.shape)}, f)
print(json.dumps({"impl": "official", "device": a.device, "shifts": a.shifts, "seconds": round(dt, 3),
                  "x_realtime": round(x.shape[0] / rate / dt, 2), "threads": torch.get_num_threads(),
                  "peak_gpu_mib": peak and round(peak, 1), "torch": torch.__version__,
                  "precision": a.precision, "tf32": tf32}))
