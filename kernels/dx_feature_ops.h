/* dx_feature_ops.h: the analysis feature ops (STFT, filterbanks, spectral
 * and frame features, reductions) of a compute backend, reached as be->feat.
 *
 * The CPU backend (kernels/cpu/features*.c, FFTW3f + OpenBLAS) is the
 * reference; the CUDA backend (kernels/cuda/features*.cu, cuFFT + cuBLAS +
 * own kernels) must equal it. The conventions are librosa 0.11's defaults
 * and are written next to the code implementing each op.
 *
 * Memory: every float pointer an op takes is backend memory (host memory on
 * CPU, device memory on CUDA), allocated with be->alloc. Matrices are
 * row-major with one row per STFT frame and a leading dimension `ld` (floats
 * between rows), so per-frame columns of several features can share one
 * matrix. Only the reductions (col_max, moments) return values to the host.
 *
 * A dx_feat_plan holds what is made once and reused: FFT plans, the window,
 * the mel / chroma / DCT matrices, band tables and scratch sized for up to
 * max_frames frames per stft_power call. Plans are made by the backend's
 * plan_create and are one worker's, like the backend (not thread-safe).
 * Every op returns DX_OK or an error (DX_ERR_INVALID for bad sizes,
 * DX_ERR_CUDA / DX_ERR_CUFFT / DX_ERR_CUBLAS on the GPU); ops queue work on
 * the backend's stream and a failure may surface at the next reduction or
 * be->sync. */
#ifndef DX_FEATURE_OPS_H
#define DX_FEATURE_OPS_H

#include "dx_backend.h"

/* Analysis parameters: librosa's defaults unless said otherwise. */
typedef struct {
  int sample_rate;         /* analysis rate (Hz), 22050 */
  int n_fft;               /* 2048 (window length = n_fft, periodic Hann) */
  int hop;                 /* 512 */
  int n_mels;              /* 128, Slaney mel scale, norm='slaney', fmin 0, fmax sr/2 */
  int n_mfcc;              /* 20, DCT-II orthonormal of power_to_db(mel) */
  int n_chroma;            /* 12 */
  float top_db;            /* 80: power_to_db clips to max - top_db */
  float rolloff_percent;   /* 0.85 */
  float tuning;            /* chroma tuning offset in fractions of a chroma bin: 0 (not estimated) */
  int contrast_bands;      /* 6 octave bands (+1 for the rest) */
  float contrast_fmin;     /* 200 Hz */
  float contrast_quantile; /* 0.02 */
} dx_feat_params;

/* Fill p with the defaults above. */
void dx_feat_default_params(dx_feat_params *p);
/* DX_OK when p is usable (sizes in range, contrast bands below Nyquist),
 * else DX_ERR_INVALID with the reason in err. */
dx_status dx_feat_params_check(const dx_feat_params *p, dx_errbuf *err);

/* Columns of the per-frame feature matrix that spectral_frames and
 * signal_frames fill (ld >= DX_FCOL_COUNT). Contrast keeps band peaks and
 * valleys in power until the whole track is known (power_to_db needs the
 * global maximum), then the pipeline turns them into dB. */
enum {
  DX_FCOL_CENTROID = 0,
  DX_FCOL_BANDWIDTH,
  DX_FCOL_ROLLOFF,
  DX_FCOL_FLATNESS,
  DX_FCOL_RMS,
  DX_FCOL_ZCR,
  DX_FCOL_PEAK0,                   /* contrast_bands + 1 peak columns */
  DX_FCOL_VALLEY0 = DX_FCOL_PEAK0 + 7, /* contrast_bands + 1 valley columns */
  DX_FCOL_COUNT = DX_FCOL_VALLEY0 + 7
};
#define DX_FEAT_MAX_BANDS 6 /* contrast_bands at most this (7 columns each) */

typedef struct dx_feat_plan dx_feat_plan;

/* The public part of a plan. Matrices live in backend memory. */
struct dx_feat_plan {
  dx_backend *be;
  dx_feat_params p;
  int n_bins;          /* n_fft / 2 + 1 */
  int max_frames;      /* most frames one stft_power call may produce */
  const float *mel_fb;    /* [n_mels][n_bins] */
  const float *chroma_fb; /* [n_chroma][n_bins] */
  const float *dct;       /* [n_mfcc][n_mels] */
  void *priv;          /* backend-private: FFT plans, scratch */
};

/* Number of centred frames librosa gives a signal of n samples: 1 + n / hop. */
size_t dx_feat_frame_count(size_t n_samples, int hop);

/* The samples [*lo, *hi) of a signal of n samples that frames [frame0,
 * frame0 + n_frames) read (frame length n_fft, hop, centred): what a
 * window given to stft_power and signal_frames must hold. Empty (lo == hi)
 * for no frames. */
static inline void dx_feat_frames_span(size_t n, int n_fft, int hop, size_t frame0, int n_frames, size_t *lo,
                                       size_t *hi) {
  *lo = *hi = 0;
  if (n_frames <= 0) return;
  size_t half = (size_t)(n_fft / 2), first = frame0 * (size_t)hop, last = (frame0 + (size_t)n_frames - 1) * hop;
  *hi = last + (size_t)n_fft - half < n ? last + (size_t)n_fft - half : n;
  *lo = first > half ? first - half : 0;
  if (*lo > *hi) *lo = *hi;
}

/* Host-side construction of the constant matrices (kernels/cpu/features_filters.c),
 * computed in double as librosa does and rounded to float. Each writes into a
 * caller buffer of the size given in dx_feat_plan. */
void dx_feat_mel_filterbank(const dx_feat_params *p, float *out);
void dx_feat_chroma_filterbank(const dx_feat_params *p, float *out);
void dx_feat_dct_matrix(const dx_feat_params *p, float *out);
/* Periodic Hann window of length n (scipy.signal.get_window('hann', n)). */
void dx_feat_hann(int n, float *out);
/* Contrast band edges as bin ranges: band k covers bins [lo[k], hi[k]) of the
 * spectrum, of which the first cnt[k] (all but the last bin below the top
 * band) enter the quantile; q[k] is the number of bins averaged for valley
 * and peak. Returns the number of bands (contrast_bands + 1). */
int dx_feat_contrast_bands(const dx_feat_params *p, int *lo, int *cnt, int *q);

/* A new plan for params p (checked) and up to max_frames frames per
 * stft_power call, with a zeroed backend-private part of priv_size bytes;
 * the backend fills the tables. DX_ERR_INVALID with the reason in err for
 * unusable params or max_frames, DX_ERR_NOMEM. Free with free(plan->priv)
 * and free(plan). */
dx_status dx_feat_plan_new(dx_backend *be, const dx_feat_params *p, int max_frames, size_t priv_size,
                           dx_feat_plan **out, dx_errbuf *err);

/* Per-frame formulas both backends evaluate the same way (plain C here,
 * also compiled as device code by the CUDA backend). */
#ifdef __CUDACC__
#define DX_FEAT_HD __host__ __device__
#else
#define DX_FEAT_HD
#endif

/* Onset strength of frame t of S ([n_frames][ld], n_mels used; dB mel):
 * the mean over the bands of the positive difference between frames
 * t - shift + 1 and t - shift (librosa's lag 1, its centring shift), 0
 * where either is outside. The bands are summed in order in double. */
static inline DX_FEAT_HD float dx_feat_onset_flux_frame(const float *S, int n_frames, int ld, int n_mels, int shift,
                                                        int t) {
  int j = t - shift;
  if (j < 0 || j + 1 >= n_frames) return 0.0f;
  const float *a = S + (size_t)j * ld, *b = S + (size_t)(j + 1) * ld;
  double s = 0;
  for (int m = 0; m < n_mels; m++) {
    float d = b[m] - a[m];
    if (d > 0) s += d;
  }
  return (float)(s / n_mels);
}

/* Contrast band b's peak and valley of a frame: the means of the q largest
 * (hi, descending) and q smallest (lo, ascending) magnitudes, summed in
 * that order in double, into the frame's feature row out. */
static inline DX_FEAT_HD void dx_feat_contrast_store(const float *lo, const float *hi, int q, int b, float *out) {
  double vs = 0, ps = 0;
  for (int i = 0; i < q; i++) {
    vs += lo[i];
    ps += hi[i];
  }
  out[DX_FCOL_PEAK0 + b] = (float)(ps / q);
  out[DX_FCOL_VALLEY0 + b] = (float)(vs / q);
}

/* FFTW plans are made and destroyed under dx_fftw_planner_lock. */
#include "dx_fftw_lock.h"

struct dx_feature_ops {
  const char *name;

  /* Make a plan for params p that computes up to max_frames frames per
   * stft_power call. The caller owns *out and frees it with plan_destroy.
   * DX_ERR_INVALID for unusable params, DX_ERR_NOMEM / device errors. */
  dx_status (*plan_create)(dx_backend *be, const dx_feat_params *p, int max_frames, dx_feat_plan **out,
                           dx_errbuf *err);
  void (*plan_destroy)(dx_feat_plan *plan); /* NULL is a no-op */

  /* Power spectrogram |STFT|^2 of frames [frame0, frame0 + n_frames) of the
   * centred STFT of a signal of n_samples samples: frame t covers samples
   * t*hop - n_fft/2 ... with zeros outside the signal (librosa >= 0.10 pads
   * with constant zeros). y holds the signal from sample y0 on (y[i - y0]
   * is sample i): the whole signal with y0 0, or a window that covers at
   * least dx_feat_frames_span of the frames (DX_ERR_INVALID when y0 lies
   * past the span's start). out: [n_frames][ld] with ld >= n_bins. */
  dx_status (*stft_power)(dx_feat_plan *plan, const float *y, size_t y0, size_t n_samples, size_t frame0,
                          int n_frames, float *out, int ld);

  /* Per-frame spectral features of a power spectrogram (rows of ld_pow):
   * centroid, bandwidth, rolloff, flatness, contrast peak/valley into the
   * DX_FCOL_* columns of feat (rows of ld_feat). */
  dx_status (*spectral_frames)(dx_feat_plan *plan, const float *power, int ld_pow, int n_frames, float *feat,
                               int ld_feat);

  /* Per-frame RMS and zero-crossing rate of frames [frame0, frame0+n_frames)
   * of the signal (frame length n_fft, hop, centred) into DX_FCOL_RMS /
   * DX_FCOL_ZCR. y and y0 as for stft_power. */
  dx_status (*signal_frames)(dx_feat_plan *plan, const float *y, size_t y0, size_t n_samples, size_t frame0,
                             int n_frames, float *feat, int ld_feat);

  /* C[m][n] = sum_k A[m][k] * B[n][k] (C = A B^T), row-major with leading
   * dimensions lda, ldb, ldc. Used for the mel / chroma filterbanks and the
   * DCT. */
  dx_status (*gemm_nt)(dx_backend *be, int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                       float *C, int ldc);

  /* Mel spectrogram of a power spectrogram: out[t][m] = sum_k mel_fb[m][k]
   * power[t][k] (librosa.feature.melspectrogram, power 2). The CPU backend
   * sums only each triangle's nonzero bins; CUDA runs the dense product. */
  dx_status (*mel_power)(dx_feat_plan *plan, const float *power, int ld_pow, int n_frames, float *out, int ld_out);

  /* Each row's n_cols values divided by the row's largest absolute value
   * (librosa.util.normalize(norm=inf) over the chroma axis; rows whose max
   * is below FLT_MIN are left as they are). */
  dx_status (*rows_normalize_max)(dx_backend *be, float *x, int n_rows, int ld, int n_cols);

  /* Largest value of x[r][col0 .. col0+n_cols) over all rows, into *out_host. */
  dx_status (*col_max)(dx_backend *be, const float *x, int n_rows, int ld, int col0, int n_cols, float *out_host);

  /* In place: librosa.power_to_db with ref 1, amin and top_db, given the
   * array's maximum (from col_max): v = 10 log10(max(amin, v)), then
   * max(v, 10 log10(max(amin, max_value)) - top_db). top_db <= 0: no clip. */
  dx_status (*power_to_db)(dx_backend *be, float *x, int n_rows, int ld, int col0, int n_cols, float amin,
                           float top_db, float max_value);

  /* x[r][dst + j] = x[r][a + j] - x[r][b + j] for j < n_cols. */
  dx_status (*cols_sub)(dx_backend *be, float *x, int n_rows, int ld, int dst, int a, int b, int n_cols);

  /* Onset strength (librosa.onset.onset_strength: lag 1, max_size 1, mean
   * over the mel bands, centred). S is the dB mel spectrogram [n_frames][ld].
   * The flux d[j] = mean_m max(0, S[j+1][m] - S[j][m]) is shifted right by
   * lag + n_fft / (2 hop) frames (3 with the defaults), zeros in front, and
   * cut to n_frames: env[t] = d[t - 3] for t >= 3, env[0..2] = 0. */
  dx_status (*onset_flux)(dx_feat_plan *plan, const float *S, int n_frames, int ld, int n_mels, float *env);

  /* Per-column mean and population standard deviation over rows (double
   * accumulation) of x[r][col0 .. col0+n_cols), into host arrays. */
  dx_status (*moments)(dx_backend *be, const float *x, int n_rows, int ld, int col0, int n_cols, double *mean_host,
                       double *std_host);

  /* Optional (NULL where a backend lacks it; the pipeline then runs
   * gemm_nt with the chroma filterbank and with a copy of it whose bins
   * below key_bin0 are zero): chroma_stft's product and the key's chroma
   * in one pass over the bins. chroma[t][c] = sum_k chroma_fb[c][k]
   * power[t][k] over every bin, key[t][c] the same over bins k >= key_bin0
   * (key may be NULL). Rows of ld_out floats; not normalised. n_chroma at
   * most 16, else DX_ERR_INVALID. */
  dx_status (*chroma_power)(dx_feat_plan *plan, const float *power, int ld_pow, int n_frames, int key_bin0,
                            float *chroma, float *key, int ld_out);
};

#endif
