/* features_ops.c: the CPU reference backend's feature plan, STFT and the
 * generic ops (GEMM through OpenBLAS, dB conversion, normalisation,
 * reductions, onset flux) of dx_feature_ops.h. Per-frame spectral and
 * signal features are in features_frames.c.
 *
 * Threading: a plan belongs to one worker; FFTW plans are made and destroyed
 * under dx_fftw_planner_lock because FFTW's planner is process-global. */
#include <cblas.h>
#include <fftw3.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "features_cpu.h"
#include "nn_vmath.h"

/* vectors stay inside functions (none crosses a call): the baseline
 * build's ABI note about them does not apply */
#pragma GCC diagnostic ignored "-Wpsabi"

/* fmaxf is a libm call unless NaN rules are relaxed; inputs here are never NaN */
static inline float maxf(float a, float b) { return a > b ? a : b; }

static void cpu_plan_destroy(dx_feat_plan *plan) {
  if (!plan) return;
  dx_cpu_feat_priv *pv = plan->priv;
  if (pv) {
    dx_fftw_planner_lock();
    if (pv->fft) fftwf_destroy_plan(pv->fft);
    fftwf_free(pv->frame);
    fftwf_free(pv->spec);
    dx_fftw_planner_unlock();
    free(pv->window);
    free(pv->freq);
    free(pv->freqf);
    free(pv->scratch);
    free(pv->mel_lo);
    free(pv->mel_hi);
    free(pv->chroma_t);
    free(pv);
  }
  free((void *)plan->mel_fb);
  free((void *)plan->chroma_fb);
  free((void *)plan->dct);
  free(plan);
}

dx_status dx_feat_params_check(const dx_feat_params *p, dx_errbuf *err) {
  if (p->sample_rate < 1000 || p->sample_rate > 384000) return dx_fail(err, DX_ERR_INVALID, "bad analysis rate %d", p->sample_rate);
  if (p->n_fft < 64 || p->n_fft > 65536 || (p->n_fft & 1)) return dx_fail(err, DX_ERR_INVALID, "bad n_fft %d", p->n_fft);
  if (p->hop < 1 || p->hop > p->n_fft) return dx_fail(err, DX_ERR_INVALID, "bad hop %d", p->hop);
  if (p->n_mels < 1 || p->n_mels > 512) return dx_fail(err, DX_ERR_INVALID, "bad n_mels %d", p->n_mels);
  if (p->n_mfcc < 1 || p->n_mfcc > p->n_mels) return dx_fail(err, DX_ERR_INVALID, "bad n_mfcc %d", p->n_mfcc);
  if (p->n_chroma < 12 || p->n_chroma % 12) return dx_fail(err, DX_ERR_INVALID, "bad n_chroma %d", p->n_chroma);
  if (p->contrast_bands < 1 || p->contrast_bands > DX_FEAT_MAX_BANDS)
    return dx_fail(err, DX_ERR_INVALID, "bad contrast_bands %d", p->contrast_bands);
  /* librosa refuses band edges at or above Nyquist */
  if (p->contrast_fmin <= 0 || p->contrast_fmin * pow(2.0, p->contrast_bands - 1) >= p->sample_rate / 2.0)
    return dx_fail(err, DX_ERR_INVALID, "contrast bands exceed Nyquist");
  if (!(p->contrast_quantile > 0 && p->contrast_quantile < 1)) return dx_fail(err, DX_ERR_INVALID, "bad contrast quantile");
  if (!(p->rolloff_percent > 0 && p->rolloff_percent < 1)) return dx_fail(err, DX_ERR_INVALID, "bad rolloff percent");
  return DX_OK;
}

dx_status dx_feat_plan_new(dx_backend *be, const dx_feat_params *p, int max_frames, size_t priv_size,
                           dx_feat_plan **out, dx_errbuf *err) {
  *out = NULL;
  dx_status st = dx_feat_params_check(p, err);
  if (st != DX_OK) return st;
  if (max_frames < 1) return dx_fail(err, DX_ERR_INVALID, "bad max_frames %d", max_frames);
  dx_feat_plan *plan = calloc(1, sizeof *plan);
  void *pv = calloc(1, priv_size);
  if (!plan || !pv) {
    free(plan);
    free(pv);
    return DX_ERR_NOMEM;
  }
  plan->be = be;
  plan->p = *p;
  plan->n_bins = p->n_fft / 2 + 1;
  plan->max_frames = max_frames;
  plan->priv = pv;
  *out = plan;
  return DX_OK;
}

dx_status dx_feat_plan_alloc_host_tables(dx_feat_plan *plan) {
  const dx_feat_params *p = &plan->p;
  size_t nb = (size_t)plan->n_bins;
  float *mel = malloc((size_t)p->n_mels * nb * sizeof *mel);
  float *chroma = malloc((size_t)p->n_chroma * nb * sizeof *chroma);
  float *dct = malloc((size_t)p->n_mfcc * p->n_mels * sizeof *dct);
  if (!mel || !chroma || !dct) {
    free(mel);
    free(chroma);
    free(dct);
    return DX_ERR_NOMEM;
  }
  dx_feat_mel_filterbank(p, mel);
  dx_feat_chroma_filterbank(p, chroma);
  dx_feat_dct_matrix(p, dct);
  plan->mel_fb = mel;
  plan->chroma_fb = chroma;
  plan->dct = dct;
  return DX_OK;
}

static dx_status cpu_plan_create(dx_backend *be, const dx_feat_params *p, int max_frames, dx_feat_plan **out,
                                 dx_errbuf *err) {
  *out = NULL;
  dx_feat_plan *plan;
  dx_status st = dx_feat_plan_new(be, p, max_frames, sizeof(dx_cpu_feat_priv), &plan, err);
  if (st != DX_OK) return st;
  dx_cpu_feat_priv *pv = plan->priv;
  int nb = plan->n_bins;
  pv->window = malloc((size_t)p->n_fft * sizeof *pv->window);
  pv->freq = malloc((size_t)nb * sizeof *pv->freq);
  pv->freqf = malloc((size_t)nb * sizeof *pv->freqf);
  pv->scratch = malloc((size_t)nb * 3 * sizeof *pv->scratch);
  pv->mel_lo = calloc((size_t)p->n_mels, sizeof *pv->mel_lo);
  pv->mel_hi = calloc((size_t)p->n_mels, sizeof *pv->mel_hi);
  pv->chroma_t = calloc((size_t)nb * 16, sizeof *pv->chroma_t);
  dx_fftw_planner_lock();
  pv->frame = fftwf_malloc((size_t)p->n_fft * sizeof(float));
  pv->spec = fftwf_malloc((size_t)nb * sizeof(fftwf_complex));
  if (pv->frame && pv->spec)
    pv->fft = fftwf_plan_dft_r2c_1d(p->n_fft, pv->frame, pv->spec, FFTW_ESTIMATE | FFTW_DESTROY_INPUT);
  dx_fftw_planner_unlock();
  if (!pv->window || !pv->freq || !pv->freqf || !pv->scratch || !pv->mel_lo || !pv->mel_hi || !pv->chroma_t || !pv->frame || !pv->spec || !pv->fft ||
      dx_feat_plan_alloc_host_tables(plan) != DX_OK) {
    cpu_plan_destroy(plan);
    return dx_fail(err, DX_ERR_NOMEM, "cannot make the CPU feature plan");
  }
  dx_feat_hann(p->n_fft, pv->window);
  /* fft_frequencies: bin k is k * sr / n_fft Hz */
  for (int k = 0; k < nb; k++) pv->freqf[k] = (float)(pv->freq[k] = (double)p->sample_rate * k / p->n_fft);
  pv->n_contrast = dx_feat_contrast_bands(p, pv->band_lo, pv->band_cnt, pv->band_q);
  for (int m = 0; m < p->n_mels; m++) {
    const float *w = plan->mel_fb + (size_t)m * nb;
    int lo = 0, hi = nb;
    while (lo < nb && w[lo] == 0.0f) lo++;
    while (hi > lo && w[hi - 1] == 0.0f) hi--;
    pv->mel_lo[m] = lo;
    pv->mel_hi[m] = hi;
  }
  for (int c = 0; c < p->n_chroma && c < 16; c++)
    for (int k = 0; k < nb; k++) pv->chroma_t[(size_t)k * 16 + c] = plan->chroma_fb[(size_t)c * nb + k];
  *out = plan;
  return DX_OK;
}

/* Centred STFT, librosa >= 0.10 convention: the signal is padded with n_fft/2
 * zeros on both sides (pad_mode='constant'), frame t starts at t*hop in the
 * padded signal, is multiplied by the periodic Hann window and transformed
 * with a real FFT; the output is |X|^2 per bin. */
DX_HOT static dx_status cpu_stft_power(dx_feat_plan *plan, const float *y, size_t y0, size_t n, size_t frame0,
                                       int n_frames, float *out, int ld) {
  dx_cpu_feat_priv *pv = plan->priv;
  int nf = plan->p.n_fft, nb = plan->n_bins, hop = plan->p.hop;
  size_t lo, hi;
  dx_feat_frames_span(n, nf, hop, frame0, n_frames, &lo, &hi);
  if (n_frames < 0 || n_frames > plan->max_frames || ld < nb || y0 > lo) return DX_ERR_INVALID;
  for (int f = 0; f < n_frames; f++) {
    long long start = (long long)(frame0 + (size_t)f) * hop - nf / 2;
    if (start >= 0 && start + nf <= (long long)n) {
      const float *src = y + (start - (long long)y0);
      for (int i = 0; i < nf; i++) pv->frame[i] = src[i] * pv->window[i];
    } else {
      for (int i = 0; i < nf; i++) {
        long long idx = start + i;
        pv->frame[i] = (idx >= 0 && idx < (long long)n) ? y[idx - (long long)y0] * pv->window[i] : 0.0f;
      }
    }
    fftwf_execute_dft_r2c(pv->fft, pv->frame, pv->spec);
    float *row = out + (size_t)f * ld;
    const float *c = (const float *)pv->spec; /* interleaved re, im (fftwf_complex may be C99 complex) */
    for (int k = 0; k < nb; k++) row[k] = c[2 * k] * c[2 * k] + c[2 * k + 1] * c[2 * k + 1];
  }
  return DX_OK;
}

DX_HOT static dx_status cpu_gemm_nt(dx_backend *be, int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                             float *C, int ldc) {
  (void)be;
  if (M < 0 || N < 0 || K < 0) return DX_ERR_INVALID;
  if (!M || !N) return DX_OK;
  int Np = (N + DX_VF_LANES - 1) / DX_VF_LANES * DX_VF_LANES; /* B's rows padded with zeros to whole vectors */
  if (N <= 32 && (size_t)K * Np <= 4096) {
    /* Few output columns and a short inner dimension (the MFCC's DCT: 20 x
     * 128): B transposed once onto the stack, then every row of C is a sum
     * of B's rows scaled by A's values, eight columns to a vector, the sums
     * held in registers. Plain loops beat BLAS's thread start-up on these
     * skinny shapes and keep the worker on its own core. */
    float bt[4096] __attribute__((aligned(32)));
    int nv = Np / DX_VF_LANES;
    for (int k = 0; k < K; k++)
      for (int n = 0; n < Np; n++) bt[(size_t)k * Np + n] = n < N ? B[(size_t)n * ldb + k] : 0.0f;
    for (int m = 0; m < M; m++) {
      const float *a = A + (size_t)m * lda;
      dx_vf s0 = dx_vf_set(0), s1 = s0, s2 = s0, s3 = s0;
      for (int k = 0; k < K; k++) {
        dx_vf av = dx_vf_set(a[k]);
        const dx_vf *row = (const dx_vf *)(bt + (size_t)k * Np);
        s0 += av * row[0];
        if (nv > 1) s1 += av * row[1];
        if (nv > 2) s2 += av * row[2];
        if (nv > 3) s3 += av * row[3];
      }
      float acc[32];
      memcpy(acc, &s0, sizeof s0);
      memcpy(acc + 8, &s1, sizeof s1);
      memcpy(acc + 16, &s2, sizeof s2);
      memcpy(acc + 24, &s3, sizeof s3);
      memcpy(C + (size_t)m * ldc, acc, (size_t)N * sizeof(float));
    }
    return DX_OK;
  }
  if (N <= 32) {
    /* Few output columns, long rows (chroma from the power spectrum on a
     * backend without chroma_power): plain dot products, four partial sums
     * so that the compiler vectorises. */
    for (int m = 0; m < M; m++) {
      const float *a = A + (size_t)m * lda;
      for (int n = 0; n < N; n++) {
        const float *b = B + (size_t)n * ldb;
        float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        int k = 0;
        for (; k + 4 <= K; k += 4) {
          s0 += a[k] * b[k];
          s1 += a[k + 1] * b[k + 1];
          s2 += a[k + 2] * b[k + 2];
          s3 += a[k + 3] * b[k + 3];
        }
        for (; k < K; k++) s0 += a[k] * b[k];
        C[(size_t)m * ldc + n] = (s0 + s1) + (s2 + s3);
      }
    }
    return DX_OK;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, ldc);
  return DX_OK;
}

/* Each mel triangle touches a few bins only: sum those (in float, as a
 * BLAS product would) instead of the dense n_mels x n_bins product. */
DX_HOT static dx_status cpu_mel_power(dx_feat_plan *plan, const float *power, int ld_pow, int n_frames, float *out,
                               int ld_out) {
  dx_cpu_feat_priv *pv = plan->priv;
  int nb = plan->n_bins, nm = plan->p.n_mels;
  if (ld_pow < nb || ld_out < nm || n_frames < 0) return DX_ERR_INVALID;
  for (int f = 0; f < n_frames; f++) {
    const float *P = power + (size_t)f * ld_pow;
    float *o = out + (size_t)f * ld_out;
    for (int m = 0; m < nm; m++) {
      const float *w = plan->mel_fb + (size_t)m * nb;
      float s = 0;
      for (int k = pv->mel_lo[m]; k < pv->mel_hi[m]; k++) s += w[k] * P[k];
      o[m] = s;
    }
  }
  return DX_OK;
}

/* Chroma and key chroma of each frame with the transposed filterbank
 * (16 values per bin, 12 used): four frames at a time, each frame's 16
 * sums in two 8-lane vectors, so every bin's filter values are loaded once
 * for four frames. Bins below key_bin0 are summed first into `low`; the
 * chroma is low + key. */
DX_HOT static dx_status cpu_chroma_power(dx_feat_plan *plan, const float *power, int ld_pow, int n_frames,
                                         int key_bin0, float *chroma, float *key, int ld_out) {
  dx_cpu_feat_priv *pv = plan->priv;
  int nb = plan->n_bins, nc = plan->p.n_chroma;
  if (nc > 16 || ld_pow < nb || ld_out < nc || n_frames < 0 || key_bin0 < 0) return DX_ERR_INVALID;
  if (key_bin0 > nb) key_bin0 = nb;
  const float *ft = pv->chroma_t;
  for (int f0 = 0; f0 < n_frames; f0 += 4) {
    int nr = n_frames - f0 < 4 ? n_frames - f0 : 4;
    const float *P[4];
    for (int r = 0; r < 4; r++) P[r] = power + (size_t)(f0 + (r < nr ? r : 0)) * ld_pow;
    dx_vf lo[4][2], acc[4][2];
    for (int r = 0; r < 4; r++) acc[r][0] = acc[r][1] = (dx_vf){0};
    for (int pass = 0; pass < 2; pass++) {
      int k0 = pass ? key_bin0 : 0, k1 = pass ? nb : key_bin0;
      for (int k = k0; k < k1; k++) {
        dx_vf w0, w1;
        memcpy(&w0, ft + (size_t)k * 16, sizeof w0);
        memcpy(&w1, ft + (size_t)k * 16 + 8, sizeof w1);
        for (int r = 0; r < 4; r++) {
          float pk = P[r][k];
          acc[r][0] += pk * w0;
          acc[r][1] += pk * w1;
        }
      }
      if (!pass)
        for (int r = 0; r < 4; r++) {
          lo[r][0] = acc[r][0], lo[r][1] = acc[r][1];
          acc[r][0] = acc[r][1] = (dx_vf){0};
        }
    }
    for (int r = 0; r < nr; r++) {
      float kv[16], cv[16];
      dx_vf c0 = lo[r][0] + acc[r][0], c1 = lo[r][1] + acc[r][1];
      memcpy(kv, &acc[r][0], sizeof acc[r][0]);
      memcpy(kv + 8, &acc[r][1], sizeof acc[r][1]);
      memcpy(cv, &c0, sizeof c0);
      memcpy(cv + 8, &c1, sizeof c1);
      float *co = chroma + (size_t)(f0 + r) * ld_out;
      for (int c = 0; c < nc; c++) co[c] = cv[c];
      if (key) {
        float *ko = key + (size_t)(f0 + r) * ld_out;
        for (int c = 0; c < nc; c++) ko[c] = kv[c];
      }
    }
  }
  return DX_OK;
}

/* librosa.util.normalize(norm=np.inf, threshold=None): divide by the largest
 * magnitude; rows below the smallest normal float are left unscaled. */
static dx_status cpu_rows_normalize_max(dx_backend *be, float *x, int n_rows, int ld, int n_cols) {
  (void)be;
  for (int r = 0; r < n_rows; r++) {
    float *row = x + (size_t)r * ld, m = 0;
    for (int c = 0; c < n_cols; c++) m = maxf(m, fabsf(row[c]));
    if (m < FLT_MIN) continue;
    for (int c = 0; c < n_cols; c++) row[c] /= m;
  }
  return DX_OK;
}

static dx_status cpu_col_max(dx_backend *be, const float *x, int n_rows, int ld, int col0, int n_cols,
                             float *out_host) {
  (void)be;
  float m = -INFINITY;
  for (int r = 0; r < n_rows; r++) {
    const float *row = x + (size_t)r * ld + col0;
    for (int c = 0; c < n_cols; c++) m = maxf(m, row[c]);
  }
  *out_host = m;
  return DX_OK;
}

/* librosa.power_to_db(S, ref=1.0, amin, top_db): 10 log10(max(amin, S)) -
 * 10 log10(max(amin, ref)), then clipped below at (max dB) - top_db. */
DX_HOT static dx_status cpu_power_to_db(dx_backend *be, float *x, int n_rows, int ld, int col0, int n_cols, float amin,
                                 float top_db, float max_value) {
  (void)be;
  float floor_db = top_db > 0 ? 10.0f * log10f(fmaxf(amin, max_value)) - top_db : -INFINITY;
  for (int r = 0; r < n_rows; r++) {
    float *row = x + (size_t)r * ld + col0;
    for (int c = 0; c < n_cols; c++) row[c] = maxf(10.0f * log10f(maxf(amin, row[c])), floor_db);
  }
  return DX_OK;
}

static dx_status cpu_cols_sub(dx_backend *be, float *x, int n_rows, int ld, int dst, int a, int b, int n_cols) {
  (void)be;
  for (int r = 0; r < n_rows; r++) {
    float *row = x + (size_t)r * ld;
    for (int c = 0; c < n_cols; c++) row[dst + c] = row[a + c] - row[b + c];
  }
  return DX_OK;
}

static dx_status cpu_onset_flux(dx_feat_plan *plan, const float *S, int n_frames, int ld, int n_mels, float *env) {
  int shift = 1 + plan->p.n_fft / (2 * plan->p.hop);
  for (int t = 0; t < n_frames; t++) env[t] = dx_feat_onset_flux_frame(S, n_frames, ld, n_mels, shift, t);
  return DX_OK;
}

/* Two passes in double: mean, then the mean squared deviation (np.std, ddof 0). */
static dx_status cpu_moments(dx_backend *be, const float *x, int n_rows, int ld, int col0, int n_cols,
                             double *mean_host, double *std_host) {
  (void)be;
  for (int c = 0; c < n_cols; c++) {
    double s = 0, v = 0;
    for (int r = 0; r < n_rows; r++) s += x[(size_t)r * ld + col0 + c];
    double m = n_rows ? s / n_rows : 0;
    for (int r = 0; r < n_rows; r++) {
      double d = x[(size_t)r * ld + col0 + c] - m;
      v += d * d;
    }
    mean_host[c] = m;
    if (std_host) std_host[c] = n_rows ? sqrt(v / n_rows) : 0;
  }
  return DX_OK;
}

const dx_feature_ops dx_cpu_feature_ops = {
    .name = "cpu",
    .plan_create = cpu_plan_create,
    .plan_destroy = cpu_plan_destroy,
    .stft_power = cpu_stft_power,
    .spectral_frames = dx_cpu_spectral_frames,
    .signal_frames = dx_cpu_signal_frames,
    .gemm_nt = cpu_gemm_nt,
    .mel_power = cpu_mel_power,
    .rows_normalize_max = cpu_rows_normalize_max,
    .col_max = cpu_col_max,
    .power_to_db = cpu_power_to_db,
    .cols_sub = cpu_cols_sub,
    .onset_flux = cpu_onset_flux,
    .moments = cpu_moments,
    .chroma_power = cpu_chroma_power,
};
