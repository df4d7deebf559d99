/* features_cuda.h: private to the CUDA backend's feature files: the plan's
 * device part and the per-frame kernels' entry points (features_frames.cu).
 * C++ (nvcc) only. */
#ifndef DX_FEATURES_CUDA_H
#define DX_FEATURES_CUDA_H

#include <cufft.h>

#include "dx_cuda.h"

extern "C" {
#include "dx_feature_ops.h"
}

typedef struct {
  int n;                                /* contrast_bands + 1 */
  int lo[DX_FEAT_MAX_BANDS + 1];        /* first bin of each band */
  int cnt[DX_FEAT_MAX_BANDS + 1];       /* bins sorted */
  int q[DX_FEAT_MAX_BANDS + 1];         /* bins averaged for valley / peak */
} dx_cuda_bands;                        /* passed by value to the kernels */

/* Device memory below comes from the backend's caching allocator
 * (dx_cuda_alloc) and goes back to it at plan_destroy; the plan's
 * mel_fb / chroma_fb / dct likewise. */
typedef struct {
  cudaStream_t stream; /* the backend's */
  cufftHandle fft;     /* R2C of n_fft, batch max_frames, on stream */
  int fft_ok;
  float *frames;       /* [max_frames][n_fft] windowed frames */
  cufftComplex *spec;  /* [max_frames][n_bins] */
  float *window;       /* periodic Hann */
  double *freq;        /* bin centre frequencies */
  dx_cuda_bands bands;
} dx_cuda_feat_priv;

extern "C" dx_status dx_cuda_spectral_frames(dx_feat_plan *plan, const float *power, int ld_pow, int n_frames,
                                             float *feat, int ld_feat);
extern "C" dx_status dx_cuda_signal_frames(dx_feat_plan *plan, const float *y, size_t y0, size_t n_samples, size_t frame0,
                                           int n_frames, float *feat, int ld_feat);
extern "C" dx_status dx_cuda_chroma_power(dx_feat_plan *plan, const float *power, int ld_pow, int n_frames,
                                          int key_bin0, float *chroma, float *key, int ld_out);

#endif
