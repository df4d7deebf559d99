/* test_features_kernels.c: every CPU feature op on signals with known
 * answers: the centroid and rolloff of a sine are its frequency, the RMS of
 * a sine is amplitude / sqrt(2), the zero-crossing rate of a square wave is
 * 2 f / sr, the chroma of a C major triad peaks on C, E and G, the mel
 * filterbank's triangles have Slaney's equal area, the DCT is orthonormal,
 * chroma_power equals the two filterbank products it replaces, contrast's
 * band extremes equal sorting, power_to_db clips at top_db, onset flux shifts by 3 frames, moments give
 * mean and population deviation, frames from a window of the signal equal those from the whole. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dx_feature_ops.h"
#include "dx_test.h"

#define SR 22050

static dx_backend *be;
static dx_feat_plan *plan;
static dx_feat_params prm;

static void setup(void) {
  if (plan) return;
  dx_errbuf err = {{0}};
  dx_feat_default_params(&prm);
  if (dx_backend_open("cpu", &be, &err) != DX_OK) return;
  if (be->feat->plan_create(be, &prm, 256, &plan, &err) != DX_OK) plan = NULL;
}

/* Per-frame features of a signal, frames [0, T). feat is [T][DX_FCOL_COUNT]. */
static float *frames_of(const float *y, size_t n, int *T_out) {
  int T = (int)dx_feat_frame_count(n, prm.hop);
  float *power = malloc((size_t)T * plan->n_bins * sizeof(float));
  float *feat = calloc((size_t)T * DX_FCOL_COUNT, sizeof(float));
  CHECK(T <= plan->max_frames);
  CHECK(be->feat->stft_power(plan, y, 0, n, 0, T, power, plan->n_bins) == DX_OK);
  CHECK(be->feat->spectral_frames(plan, power, plan->n_bins, T, feat, DX_FCOL_COUNT) == DX_OK);
  CHECK(be->feat->signal_frames(plan, y, 0, n, 0, T, feat, DX_FCOL_COUNT) == DX_OK);
  free(power);
  *T_out = T;
  return feat;
}

static float *sine(double f, double amp, size_t n) {
  float *y = malloc(n * sizeof *y);
  for (size_t i = 0; i < n; i++) y[i] = (float)(amp * sin(2 * M_PI * f * i / SR));
  return y;
}

DX_TEST(sine_centroid_rolloff_rms) {
  setup();
  if (!plan) return;
  /* 1000 Hz sits between bins (10.77 Hz apart); use a bin-centred tone so
   * the centroid is exact: bin 93 = 1001.3 Hz */
  double f = 93.0 * SR / prm.n_fft;
  size_t n = SR * 2;
  float *y = sine(f, 0.5, n);
  int T;
  float *feat = frames_of(y, n, &T);
  for (int t = 4; t < T - 4; t++) { /* away from the zero-padded ends */
    const float *r = feat + (size_t)t * DX_FCOL_COUNT;
    CHECK_NEAR(r[DX_FCOL_CENTROID], f, 0.5);
    CHECK_NEAR(r[DX_FCOL_ROLLOFF], f, SR / (double)prm.n_fft + 0.01); /* the bin holding 85 % */
    CHECK_NEAR(r[DX_FCOL_RMS], 0.5 / sqrt(2.0), 1e-3);
    CHECK(r[DX_FCOL_BANDWIDTH] < 20); /* Hann main lobe: a few bins */
    CHECK(r[DX_FCOL_FLATNESS] < 1e-3);
  }
  free(feat);
  free(y);
}

DX_TEST(white_noise_is_flat_and_centred) {
  setup();
  if (!plan) return;
  size_t n = SR;
  float *y = malloc(n * sizeof *y);
  uint64_t s = 99;
  for (size_t i = 0; i < n; i++) {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    y[i] = (float)((s >> 40) * (1.0 / 8388608.0) - 1.0);
  }
  int T;
  float *feat = frames_of(y, n, &T);
  double c = 0, fl = 0;
  for (int t = 4; t < T - 4; t++) {
    c += feat[(size_t)t * DX_FCOL_COUNT + DX_FCOL_CENTROID];
    fl += feat[(size_t)t * DX_FCOL_COUNT + DX_FCOL_FLATNESS];
  }
  c /= T - 8;
  fl /= T - 8;
  CHECK_NEAR(c, SR / 4.0, 150); /* flat spectrum: centroid at half Nyquist */
  CHECK(fl > 0.4);              /* exp(E log X) / E X for exponential |X|^2 is e^-gamma = 0.56 */
  free(feat);
  free(y);
}

DX_TEST(square_wave_zero_crossings) {
  setup();
  if (!plan) return;
  /* period 40 samples: 2 crossings per period -> rate 2 / 40 = 0.05 */
  size_t n = SR;
  float *y = malloc(n * sizeof *y);
  for (size_t i = 0; i < n; i++) y[i] = (i / 20) % 2 ? -0.5f : 0.5f;
  int T;
  float *feat = frames_of(y, n, &T);
  for (int t = 3; t < T - 3; t++) {
    float z = feat[(size_t)t * DX_FCOL_COUNT + DX_FCOL_ZCR];
    /* 2047 neighbour pairs per frame: 102 or 103 crossings */
    CHECK(fabs(z * prm.n_fft - 102.5) <= 0.6);
  }
  /* edge frames repeat the first sample (mode='edge'): fewer crossings, never more */
  CHECK(feat[DX_FCOL_ZCR] < 0.05f);
  free(feat);
  free(y);
}

DX_TEST(chroma_of_c_major_triad) {
  setup();
  if (!plan) return;
  size_t n = SR;
  float *y = calloc(n, sizeof *y);
  const double notes[3] = {261.63, 329.63, 392.00}; /* C4 E4 G4 */
  for (size_t i = 0; i < n; i++)
    for (int k = 0; k < 3; k++) y[i] += (float)(0.2 * sin(2 * M_PI * notes[k] * i / SR));
  int T = (int)dx_feat_frame_count(n, prm.hop);
  float *power = malloc((size_t)T * plan->n_bins * sizeof(float));
  float *chroma = malloc((size_t)T * 12 * sizeof(float));
  CHECK(be->feat->stft_power(plan, y, 0, n, 0, T, power, plan->n_bins) == DX_OK);
  CHECK(be->feat->gemm_nt(be, T, 12, plan->n_bins, power, plan->n_bins, plan->chroma_fb, plan->n_bins, chroma, 12) ==
        DX_OK);
  CHECK(be->feat->rows_normalize_max(be, chroma, T, 12, 12) == DX_OK);
  double mean[12];
  CHECK(be->feat->moments(be, chroma, T, 12, 0, 12, mean, NULL) == DX_OK);
  for (int c = 0; c < 12; c++) {
    int in = c == 0 || c == 4 || c == 7;
    if (in)
      CHECK_MSG(mean[c] > 0.6, "chroma[%d] = %.3f", c, mean[c]);
    else
      CHECK_MSG(mean[c] < 0.35, "chroma[%d] = %.3f", c, mean[c]);
  }
  free(power);
  free(chroma);
  free(y);
}

/* chroma_power (one pass: chroma and the key's chroma without the low
 * bins) equals the two gemm_nt products it replaces, on frames of noise
 * plus a chord, for every frame count mod 4. */
DX_TEST(chroma_power_equals_two_products) {
  setup();
  if (!plan) return;
  if (!be->feat->chroma_power) SKIP("backend has no chroma_power");
  size_t n = SR;
  float *y = malloc(n * sizeof *y);
  uint32_t s = 7;
  for (size_t i = 0; i < n; i++) {
    s = s * 1664525u + 1013904223u;
    y[i] = (float)(0.3 * sin(2 * M_PI * 220.0 * i / SR) + 0.05 * ((s >> 8) / 16777216.0 - 0.5));
  }
  int T = 43, nb = plan->n_bins, kb = 17;
  float *power = malloc((size_t)T * nb * sizeof(float)), *kfb = malloc((size_t)12 * nb * sizeof(float));
  float *c1 = malloc((size_t)T * 12 * sizeof(float)), *k1 = malloc((size_t)T * 12 * sizeof(float));
  float *c2 = malloc((size_t)T * 12 * sizeof(float)), *k2 = malloc((size_t)T * 12 * sizeof(float));
  CHECK(be->feat->stft_power(plan, y, 0, n, 0, T, power, nb) == DX_OK);
  memcpy(kfb, plan->chroma_fb, (size_t)12 * nb * sizeof(float));
  for (int c = 0; c < 12; c++)
    for (int k = 0; k < kb; k++) kfb[(size_t)c * nb + k] = 0;
  CHECK(be->feat->gemm_nt(be, T, 12, nb, power, nb, plan->chroma_fb, nb, c1, 12) == DX_OK);
  CHECK(be->feat->gemm_nt(be, T, 12, nb, power, nb, kfb, nb, k1, 12) == DX_OK);
  for (int t0 = 0; t0 < 4; t0++) {
    CHECK(be->feat->chroma_power(plan, power + (size_t)t0 * nb, nb, T - t0, kb, c2, k2, 12) == DX_OK);
    double e = 0;
    for (int i = 0; i < (T - t0) * 12; i++) {
      e = fmax(e, fabs(c2[i] - c1[t0 * 12 + i]) / fmax(fabs(c1[t0 * 12 + i]), 1e-6));
      e = fmax(e, fabs(k2[i] - k1[t0 * 12 + i]) / fmax(fabs(k1[t0 * 12 + i]), 1e-6));
    }
    CHECK_MSG(e < 1e-5, "frames from %d: largest relative difference %.2e", t0, e);
  }
  CHECK(be->feat->chroma_power(plan, power, nb, T, kb, c2, NULL, 12) == DX_OK);
  free(power);
  free(kfb);
  free(c1);
  free(k1);
  free(c2);
  free(k2);
  free(y);
}

static int cmp_float(const void *a, const void *b) {
  float x = *(const float *)a, y = *(const float *)b;
  return (x > y) - (x < y);
}

/* Contrast peaks and valleys are the means of the q largest and q smallest
 * magnitudes of each band: compare with sorting, on spectra that fall,
 * rise, repeat values and are noise. */
DX_TEST(contrast_extremes_match_sorting) {
  setup();
  if (!plan) return;
  int nb = plan->n_bins, lo[8], cnt[8], q[8];
  int nbands = dx_feat_contrast_bands(&prm, lo, cnt, q);
  enum { NF = 6 };
  float *P = malloc((size_t)NF * nb * sizeof(float)), *feat = calloc((size_t)NF * DX_FCOL_COUNT, sizeof(float));
  float *S = malloc((size_t)nb * sizeof(float));
  uint32_t s = 11;
  for (int k = 0; k < nb; k++) {
    s = s * 1664525u + 1013904223u;
    double u = (s >> 8) / 16777216.0;
    P[k] = (float)(1.0 / (1 + k));                 /* falling */
    P[nb + k] = (float)(1e-6 * (1 + k));           /* rising */
    P[2 * nb + k] = (float)((k / 5) % 3 + 1);      /* repeated values */
    P[3 * nb + k] = (float)(u * u * 10);           /* noise */
    P[4 * nb + k] = (float)(k % 16 == 15 ? 5 : 1); /* ties, one group holding every peak */
    P[5 * nb + k] = (float)(nb - k < 40 ? 100 + k : u); /* the extremes at the end of the spectrum */
  }
  CHECK(be->feat->spectral_frames(plan, P, nb, NF, feat, DX_FCOL_COUNT) == DX_OK);
  for (int f = 0; f < NF; f++)
    for (int b = 0; b < nbands; b++) {
      for (int k = 0; k < cnt[b]; k++) S[k] = sqrtf(P[(size_t)f * nb + lo[b] + k]);
      qsort(S, (size_t)cnt[b], sizeof *S, cmp_float);
      double vs = 0, ps = 0;
      for (int i = 0; i < q[b]; i++) vs += S[i], ps += S[cnt[b] - 1 - i];
      CHECK_MSG((float)(vs / q[b]) == feat[f * DX_FCOL_COUNT + DX_FCOL_VALLEY0 + b], "frame %d band %d valley", f, b);
      CHECK_MSG((float)(ps / q[b]) == feat[f * DX_FCOL_COUNT + DX_FCOL_PEAK0 + b], "frame %d band %d peak", f, b);
    }
  free(P);
  free(feat);
  free(S);
}

DX_TEST(mel_filterbank_slaney_area_and_dct_orthonormal) {
  setup();
  if (!plan) return;
  int nb = plan->n_bins;
  /* norm='slaney': each triangle, integrated over Hz, has area 1 */
  for (int m = 0; m < prm.n_mels; m += 17) {
    double area = 0;
    for (int k = 0; k < nb; k++) area += plan->mel_fb[(size_t)m * nb + k] * ((double)SR / prm.n_fft);
    CHECK_NEAR(area, 1.0, 0.08);
  }
  /* the first band peaks below 30 Hz, the last near Nyquist */
  int peak0 = 0, peakL = 0;
  for (int k = 0; k < nb; k++) {
    if (plan->mel_fb[k] > plan->mel_fb[peak0]) peak0 = k;
    if (plan->mel_fb[(size_t)(prm.n_mels - 1) * nb + k] > plan->mel_fb[(size_t)(prm.n_mels - 1) * nb + peakL]) peakL = k;
  }
  CHECK(peak0 <= 3);
  CHECK(peakL > nb - 60);
  /* D D^T = I */
  for (int i = 0; i < prm.n_mfcc; i++)
    for (int j = 0; j < prm.n_mfcc; j++) {
      double s = 0;
      for (int k = 0; k < prm.n_mels; k++) s += (double)plan->dct[i * prm.n_mels + k] * plan->dct[j * prm.n_mels + k];
      CHECK_NEAR(s, i == j ? 1.0 : 0.0, 1e-5);
    }
}

DX_TEST(power_to_db_col_max_cols_sub_moments) {
  setup();
  if (!plan) return;
  float x[6] = {1.0f, 100.0f, 1e-12f, 0.01f, 1e-9f, 10.0f};
  float mx;
  CHECK(be->feat->col_max(be, x, 3, 2, 0, 2, &mx) == DX_OK);
  CHECK(mx == 100.0f);
  CHECK(be->feat->power_to_db(be, x, 3, 2, 0, 2, 1e-10f, 80.0f, mx) == DX_OK);
  CHECK_NEAR(x[0], 0.0, 1e-5);
  CHECK_NEAR(x[1], 20.0, 1e-5);
  CHECK_NEAR(x[2], -60.0, 1e-5); /* -100 dB (amin) clipped at 20 - 80 */
  CHECK_NEAR(x[3], -20.0, 1e-5);
  CHECK_NEAR(x[4], -60.0, 1e-5);
  CHECK(be->feat->cols_sub(be, x, 3, 2, 0, 1, 0, 1) == DX_OK);
  CHECK_NEAR(x[0], 20.0, 1e-5);
  double m, sd;
  float v[4] = {1, 2, 3, 4};
  CHECK(be->feat->moments(be, v, 4, 1, 0, 1, &m, &sd) == DX_OK);
  CHECK_NEAR(m, 2.5, 1e-12);
  CHECK_NEAR(sd, sqrt(1.25), 1e-12);
}

DX_TEST(onset_flux_shift_and_mean) {
  setup();
  if (!plan) return;
  /* two bands; a step up of 10 dB in band 0 at frame 5 */
  float S[10 * 2] = {0};
  for (int t = 5; t < 10; t++) S[t * 2] = 10.0f;
  float env[10];
  CHECK(be->feat->onset_flux(plan, S, 10, 2, 2, env) == DX_OK);
  /* d[4] = mean(max(0, S[5] - S[4])) = 5; shifted by 1 + 2048 / 1024 = 3 */
  for (int t = 0; t < 10; t++) CHECK_NEAR(env[t], t == 7 ? 5.0 : 0.0, 1e-6);
}

/* Frames computed from a window holding only the samples they read (its
 * own allocation, as the streaming analysis reads them back) equal the
 * frames of the whole signal bit for bit: the first frames (left padding,
 * edge-repeated zero crossings), the middle, and the last ones past the
 * end. A window starting after the frames' first sample is refused. */
DX_TEST(windows_equal_whole_signal) {
  setup();
  if (!plan) return;
  size_t n = 40 * (size_t)prm.hop + 300;
  float *y = malloc(n * sizeof *y);
  uint64_t s = 7;
  for (size_t i = 0; i < n; i++) {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    y[i] = (float)(0.4 * sin(0.03 * i)) + (float)((s >> 40) & 0xffff) / 65536.0f * 0.1f - 0.05f;
  }
  y[0] = -0.5f; /* the zero-crossing rate's edge padding repeats it */
  y[n - 1] = -0.25f;
  int T = (int)dx_feat_frame_count(n, prm.hop), nb = plan->n_bins;
  float *pw = malloc((size_t)T * nb * sizeof *pw), *ft = calloc((size_t)T * DX_FCOL_COUNT, sizeof *ft);
  float *pw2 = malloc((size_t)T * nb * sizeof *pw2), *ft2 = calloc((size_t)T * DX_FCOL_COUNT, sizeof *ft2);
  CHECK(be->feat->stft_power(plan, y, 0, n, 0, T, pw, nb) == DX_OK);
  CHECK(be->feat->signal_frames(plan, y, 0, n, 0, T, ft, DX_FCOL_COUNT) == DX_OK);
  const int chunk = 7;
  for (int f0 = 0; f0 < T; f0 += chunk) {
    int nf = T - f0 < chunk ? T - f0 : chunk;
    size_t lo, hi;
    dx_feat_frames_span(n, prm.n_fft, prm.hop, (size_t)f0, nf, &lo, &hi);
    CHECK(hi > lo && hi <= n);
    float *w = malloc((hi - lo) * sizeof *w);
    memcpy(w, y + lo, (hi - lo) * sizeof *w);
    CHECK(be->feat->stft_power(plan, w, lo, n, (size_t)f0, nf, pw2 + (size_t)f0 * nb, nb) == DX_OK);
    CHECK(be->feat->signal_frames(plan, w, lo, n, (size_t)f0, nf, ft2 + (size_t)f0 * DX_FCOL_COUNT, DX_FCOL_COUNT) ==
          DX_OK);
    CHECK(be->feat->stft_power(plan, w, lo + 1, n, (size_t)f0, nf, pw2, nb) == DX_ERR_INVALID);
    CHECK(be->feat->signal_frames(plan, w, lo + 1, n, (size_t)f0, nf, ft2, DX_FCOL_COUNT) == DX_ERR_INVALID);
    free(w);
  }
  CHECK(!memcmp(pw, pw2, (size_t)T * nb * sizeof *pw));
  for (int t = 0; t < T; t++) {
    CHECK(ft[t * DX_FCOL_COUNT + DX_FCOL_RMS] == ft2[t * DX_FCOL_COUNT + DX_FCOL_RMS]);
    CHECK(ft[t * DX_FCOL_COUNT + DX_FCOL_ZCR] == ft2[t * DX_FCOL_COUNT + DX_FCOL_ZCR]);
  }
  free(y);
  free(pw);
  free(ft);
  free(pw2);
  free(ft2);
}

DX_TEST(bad_parameters_refused) {
  setup();
  if (!plan) return;
  dx_feat_params p = prm;
  dx_errbuf err = {{0}};
  dx_feat_plan *pl = NULL;
  p.contrast_fmin = 1000; /* band edges up to 1000 * 2^5 = 32 kHz > Nyquist at 22,050 */
  CHECK(be->feat->plan_create(be, &p, 16, &pl, &err) == DX_ERR_INVALID);
  CHECK(strstr(err.msg, "Nyquist") != NULL);
  CHECK(dx_strerror(DX_ERR_INVALID) != NULL); /* (also links engine/core/error.c before the kernels) */
  CHECK(dx_feat_params_check(&prm, &err) == DX_OK);
  CHECK(pl == NULL);
  p = prm;
  p.n_fft = 1001;
  CHECK(be->feat->plan_create(be, &p, 16, &pl, &err) == DX_ERR_INVALID);
  CHECK(be->feat->stft_power(plan, NULL, 0, 0, 0, plan->max_frames + 1, NULL, plan->n_bins) == DX_ERR_INVALID);
}

static void teardown(void) {
  if (plan) be->feat->plan_destroy(plan);
  dx_backend_close(be);
}

DX_TEST(cleanup) { teardown(); }

DX_TEST_MAIN(DX_T(sine_centroid_rolloff_rms), DX_T(white_noise_is_flat_and_centred), DX_T(square_wave_zero_crossings),
             DX_T(chroma_of_c_major_triad), DX_T(chroma_power_equals_two_products),
             DX_T(contrast_extremes_match_sorting), DX_T(mel_filterbank_slaney_area_and_dct_orthonormal),
             DX_T(power_to_db_col_max_cols_sub_moments), DX_T(onset_flux_shift_and_mean), DX_T(windows_equal_whole_signal),
             DX_T(bad_parameters_refused),
             DX_T(cleanup))
