/* spec.c: Demucs `_spec` / `_ispec` on backend ops (see dx_spec.h).
 *
 * _spec: reflect-pad by 3/8 nfft on the left and 3/8 nfft + le*hop - L on
 * the right (the demucs pad1d rule: zeros first when the signal is too short
 * to reflect), then torch.stft's own centre reflect-padding of nfft/2, the
 * STFT with hop nfft/4, and keep bins [0, nfft/2) of frames [2, 2+le).
 * _ispec: the same frames placed at 2.. of le+4 zero frames, the Nyquist bin
 * zero, torch.istft, and the window of samples [nfft/2 + pad, + length).
 * Threading: per call. */
#include "dx_spec.h"

long long dx_spec_frames(long long length, int nfft) {
  long long hop = nfft / 4;
  return (length + hop - 1) / hop;
}

dx_status dx_spec_forward(dx_run *r, const float *x, int rows, long long length, int nfft, float *z) {
  int hop = nfft / 4, pad = hop / 2 * 3;
  long long le = dx_spec_frames(length, nfft);
  long long right = pad + le * hop - length;
  long long l1 = length + pad + right, l2 = l1 + nfft;
  if (l2 > 0x7fffffffLL) return dx_fail(r->err, DX_ERR_INVALID, "signal of %lld samples is too long", length);
  size_t mark = dx_run_mark(r);
  float *p1 = dx_run_alloc(r, (size_t)rows * (size_t)l1), *p2 = dx_run_alloc(r, (size_t)rows * (size_t)l2);
  if (!p1 || !p2) return DX_ERR_INTERNAL;
  long long maxpad = pad > right ? pad : right;
  if (length <= maxpad) {
    /* demucs pad1d: zero-extend so that the reflection is possible */
    long long extra = maxpad - length + 1, extra_r = right < extra ? right : extra, extra_l = extra - extra_r;
    long long l0 = length + extra;
    float *p0 = dx_run_alloc(r, (size_t)rows * (size_t)l0);
    if (!p0) return DX_ERR_INTERNAL;
    DX_TRY(DX_NN(r, pad1d, x, p0, rows, (int)length, (int)extra_l, (int)extra_r, DX_PAD_ZERO));
    DX_TRY(DX_NN(r, pad1d, p0, p1, rows, (int)l0, (int)(pad - extra_l), (int)(right - extra_r), DX_PAD_REFLECT));
  } else {
    DX_TRY(DX_NN(r, pad1d, x, p1, rows, (int)length, pad, (int)right, DX_PAD_REFLECT));
  }
  DX_TRY(DX_NN(r, pad1d, p1, p2, rows, (int)l1, nfft / 2, nfft / 2, DX_PAD_REFLECT));
  DX_TRY(DX_NN(r, stft, p2, z, rows, l2, nfft, hop, 2, (int)le, nfft / 2));
  dx_run_release(r, mark);
  return DX_OK;
}

dx_status dx_spec_inverse(dx_run *r, const float *z, int rows, int frames, int nfft, long long length, float *y) {
  int hop = nfft / 4, pad = hop / 2 * 3;
  return DX_NN(r, istft, z, y, rows, nfft, hop, nfft / 2, frames, 2, frames + 4, (long long)(nfft / 2 + pad), length);
}
