/* features_cpu.h: private to the CPU backend's feature files: the plan's
 * CPU part and the per-frame ops of features_frames.c. */
#ifndef DX_FEATURES_CPU_H
#define DX_FEATURES_CPU_H

#include <fftw3.h>

#include "dx_feature_ops.h"
#include "dx_hot.h"

typedef struct {
  fftwf_plan fft;       /* r2c of n_fft, executed with the new-array interface */
  float *frame;         /* n_fft, fftwf_malloc'd (aligned like at planning) */
  fftwf_complex *spec;  /* n_bins */
  float *window;        /* periodic Hann, n_fft */
  double *freq;         /* bin centre frequencies, n_bins */
  float *freqf;         /* the same in float */
  float *scratch;       /* 3 * n_bins: contrast extremes, then the frame's magnitudes */
  int *mel_lo, *mel_hi; /* nonzero bin range [lo, hi) of each mel triangle */
  float *chroma_t;      /* chroma filterbank transposed: [n_bins][16], rows past n_chroma zero */
  int n_contrast;       /* contrast_bands + 1 */
  int band_lo[DX_FEAT_MAX_BANDS + 1], band_cnt[DX_FEAT_MAX_BANDS + 1], band_q[DX_FEAT_MAX_BANDS + 1];
} dx_cpu_feat_priv;

/* Fill plan->mel_fb, chroma_fb and dct with malloc'd host tables. */
dx_status dx_feat_plan_alloc_host_tables(dx_feat_plan *plan);

dx_status dx_cpu_spectral_frames(dx_feat_plan *plan, const float *power, int ld_pow, int n_frames, float *feat,
                                 int ld_feat);
dx_status dx_cpu_signal_frames(dx_feat_plan *plan, const float *y, size_t y0, size_t n_samples, size_t frame0, int n_frames,
                               float *feat, int ld_feat);

#endif
