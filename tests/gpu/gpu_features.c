/* gpu_features.c (GPU tier): the CUDA feature backend equals the CPU
 * reference within 1e-4 relative error.
 *
 * Op level, on 700 frames of a music-like signal: every op the analysis
 * uses (stft_power, spectral_frames, signal_frames, mel_power,
 * chroma_power with and without the key's chroma, rows_normalize_max,
 * col_max, power_to_db, gemm_nt for the DCT, onset_flux over all and over
 * the low bands, the contrast steps with cols_sub, moments). The GPU runs
 * the STFT and signal features in chunks smaller than the CPU's one call
 * (frame offsets, a partial last batch; each chunk's signal a window of
 * just the samples it reads), with row strides wider than the
 * rows, and every GPU output starts as NaN so an element left unwritten
 * fails. Per-frame features are compared column by column (relative L2),
 * so a small feature is not hidden behind a large one; a rolloff one bin
 * from the CPU's is accepted only at a near-tie of the threshold. Every op
 * also takes zero frames or rows. The GPU backend is opened with
 * DEMIX_CUDA_TF32=1: the feature products stay float32.
 *
 * Long inputs: 70,001 frames (more than a 65,535-block grid dimension,
 * odd) through the signal features, spectral features, mel, chroma and the
 * whole-track steps in one call each, and the STFT at frames past 65,535
 * and at the padded end.
 *
 * Pipeline level: a 30 s music-like stereo 44.1 kHz track through
 * engine/analysis on cpu and on cuda, every result compared (scalars:
 * relative error; vectors: largest difference over the vector's largest
 * magnitude); then a 12 s track on the same CUDA analyzer (buffers sized
 * for the longer track are reused); then the 30 s track as a file on the
 * streaming path (its signal uploaded a 200-frame window at a time) against
 * the CPU's streamed result; then two worker threads with their own
 * CUDA backends (streams) and params.threads 2 analyse at once.
 *
 * Without a GPU (or in a build without CUDA) every test says why and
 * passes: the tier runs on GPU hosts (tools/test --gpu). */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dx_analysis.h"
#include "dx_test.h"
#include "gpu_side.h"
#include "../unit/test_analysis_synth.h"

#define TOL 1e-4
#define CONTRAST_TOP_TOL 1e-2 /* see compare_results */

static double rel(double a, double b) { return fabs(a - b) / fmax(fabs(b), 1e-9); }

static double vec_rel(const double *a, const double *b, int n) {
  double d = 0, m = 0;
  for (int i = 0; i < n; i++) {
    d = fmax(d, fabs(a[i] - b[i]));
    m = fmax(m, fabs(b[i]));
  }
  return d / fmax(m, 1e-12);
}

static int have_gpu(void) {
  char desc[128];
  if (!strcmp(gpu_side_device(), "cpu")) return 1;
  if (!dx_backend_cuda_available(desc, sizeof desc)) return 0;
  fprintf(stderr, "  GPU: %s\n", desc);
  return 1;
}

#define NO_GPU "no CUDA device visible (or a build without CUDA): the GPU tier runs on a GPU host"

/* ---- op level ---- */

static dx_backend *cpu, *gpu;

static float *host_nan(size_t n) {
  float *h = malloc((n ? n : 1) * sizeof *h);
  for (size_t i = 0; i < n; i++) h[i] = NAN;
  return h;
}

/* Device copy of n host floats (NULL on failure, which the CHECK reports). */
static float *dev_of(const float *h, size_t n) {
  float *d = NULL;
  if (gpu->alloc(gpu, n * sizeof(float), (void **)&d) != DX_OK) d = NULL;
  if (d && gpu->upload(gpu, d, h, n * sizeof(float)) != DX_OK) {
    gpu->free(gpu, d);
    d = NULL;
  }
  CHECK(d != NULL);
  return d;
}

/* Device buffer of n NaNs. */
static float *dev_nan(size_t n) {
  float *h = host_nan(n);
  float *d = dev_of(h, n);
  free(h);
  return d;
}

/* Compare columns [c0, c0 + nc) of the [rows][ld] device matrix with the
 * CPU's: every value finite, and the relative L2 error at most TOL for
 * each column (per_col) or over the whole block. */
static void cmp_cols(const char *what, const float *dev, const float *ref, int rows, int ld, int c0, int nc,
                     int per_col) {
  size_t n = (size_t)rows * ld;
  float *h = malloc(n * sizeof *h), *g = malloc((size_t)rows * sizeof *g), *c = malloc((size_t)rows * sizeof *c);
  dx_status st = dev ? gpu->sync(gpu) : DX_ERR_INVALID;
  if (st == DX_OK) st = gpu->download(gpu, h, dev, n * sizeof(float));
  CHECK_MSG(st == DX_OK, "%s: device error %s", what, dx_strerror(st));
  if (st == DX_OK) {
    size_t bad = 0;
    for (int r = 0; r < rows; r++)
      for (int j = c0; j < c0 + nc; j++) bad += !isfinite(h[(size_t)r * ld + j]);
    CHECK_MSG(bad == 0, "%s: %zu values not finite (not written?)", what, bad);
    double num = 0, den = 0, worst = 0;
    int worst_col = c0;
    for (int j = c0; j < c0 + nc; j++) {
      for (int r = 0; r < rows; r++) {
        g[r] = h[(size_t)r * ld + j];
        c[r] = ref[(size_t)r * ld + j];
        num += ((double)g[r] - c[r]) * ((double)g[r] - c[r]);
        den += (double)c[r] * c[r];
      }
      double e = dx_test_rel_l2(g, c, (size_t)rows);
      if (isnan(e)) e = INFINITY;
      if (per_col && e > worst) worst = e, worst_col = j;
    }
    if (!per_col) worst = den > 0 ? sqrt(num / den) : sqrt(num);
    if (per_col)
      CHECK_MSG(worst <= TOL, "%s: column %d relative L2 %.3g", what, worst_col, worst);
    else
      CHECK_MSG(worst <= TOL, "%s: relative L2 %.3g", what, worst);
    if (!(worst <= TOL)) dx_test_dump(what, h, n);
  }
  free(h);
  free(g);
  free(c);
}

/* Rolloff is a bin frequency: where a frame's cumulative magnitude meets
 * rolloff_percent of its total within rounding, the backends may pick
 * neighbouring bins, both right. Frames of the [rows][ldf] device features
 * whose rolloff is one bin from the CPU's at such a near-tie (judged on the
 * CPU's power spectrum, [rows][ldp]) take the device's value in the CPU's
 * feat, so the comparisons after see only real differences; any other
 * difference stays. At most 1 % of the frames may be near-ties. */
static void excuse_rolloff_ties(const char *what, const float *dev, float *feat, const float *power, int ldp, int rows,
                                int ldf, const dx_feat_params *p) {
  size_t n = (size_t)rows * ldf;
  float *h = malloc(n * sizeof *h);
  dx_status st = dev ? gpu->sync(gpu) : DX_ERR_INVALID;
  if (st == DX_OK) st = gpu->download(gpu, h, dev, n * sizeof(float));
  CHECK_MSG(st == DX_OK, "%s: device error %s", what, dx_strerror(st));
  int ties = 0, nb = p->n_fft / 2 + 1;
  const double bin = (double)p->sample_rate / p->n_fft;
  for (int r = 0; st == DX_OK && r < rows; r++) {
    float g = h[(size_t)r * ldf + DX_FCOL_ROLLOFF], *c = &feat[(size_t)r * ldf + DX_FCOL_ROLLOFF];
    if (g == *c || !isfinite(g) || fabs(fabs((double)g - *c) - bin) > 1e-3 * bin) continue;
    int k = (int)lround(fmin(g, *c) / bin); /* the lower bin: its cumulative sum is the one at the threshold */
    const float *P = power + (size_t)r * ldp;
    double l1 = 0, cum = 0;
    for (int j = 0; j < nb; j++) {
      double s = sqrtf(P[j]);
      l1 += s;
      if (j <= k) cum += s;
    }
    if (fabs(cum - p->rolloff_percent * l1) <= 1e-5 * l1) {
      *c = g;
      ties++;
    }
  }
  CHECK_MSG(ties <= rows / 100 + 1, "%s: rolloff differs by one bin at %d near-ties of %d frames", what, ties, rows);
  if (ties) fprintf(stderr, "  %s: rolloff one bin apart at %d near-tie frame(s)\n", what, ties);
  free(h);
}

/* The test's plans (either may be NULL) and both backends. */
static void close_all(dx_feat_plan *pc, dx_feat_plan *pg) {
  if (pc) cpu->feat->plan_destroy(pc);
  if (pg) gpu->feat->plan_destroy(pg);
  dx_backend_close(cpu);
  dx_backend_close(gpu);
  cpu = gpu = NULL;
}

/* A track's per-frame results on one side, for the whole-track steps. */
typedef struct {
  float *mel, *feat, *mfcc, *env;
} steps_bufs;

/* The whole-track steps over T frames, on the CPU's buffers h and the
 * GPU's d (each changed in place): the mel spectrogram to dB with the
 * track's max, the MFCC (DCT of the dB mel), the onset envelope, spectral
 * contrast (peaks and valleys to dB with their own max, then the
 * difference), and the moments the pipeline reports of the frame features
 * and the MFCC. Comparison names start with tag. */
static void whole_track_steps_equal(const char *tag, dx_feat_plan *pc, dx_feat_plan *pg, int T, int ldm, int ldf,
                                    const steps_bufs *h, const steps_bufs *d) {
  const dx_feature_ops *C = cpu->feat, *G = gpu->feat;
  const dx_feat_params *p = &pc->p;
  const int nm = p->n_mels, nmf = p->n_mfcc, nbands = p->contrast_bands + 1;
  char name[64];
  float mc = 0, mg = 0;
  CHECK(C->col_max(cpu, h->mel, T, ldm, 0, nm, &mc) == DX_OK);
  CHECK(G->col_max(gpu, d->mel, T, ldm, 0, nm, &mg) == DX_OK);
  CHECK_MSG(rel(mg, mc) <= TOL, "%s: mel max %.9g vs cpu %.9g", tag, mg, mc);
  CHECK(C->power_to_db(cpu, h->mel, T, ldm, 0, nm, 1e-10f, p->top_db, mc) == DX_OK);
  CHECK(G->power_to_db(gpu, d->mel, T, ldm, 0, nm, 1e-10f, p->top_db, mc) == DX_OK);
  snprintf(name, sizeof name, "%s_mel_db", tag);
  cmp_cols(name, d->mel, h->mel, T, ldm, 0, nm, 0);
  CHECK(C->gemm_nt(cpu, T, nmf, nm, h->mel, ldm, pc->dct, nm, h->mfcc, nmf) == DX_OK);
  CHECK(G->gemm_nt(gpu, T, nmf, nm, d->mel, ldm, pg->dct, nm, d->mfcc, nmf) == DX_OK);
  snprintf(name, sizeof name, "%s_mfcc", tag);
  cmp_cols(name, d->mfcc, h->mfcc, T, nmf, 0, nmf, 1);
  CHECK(C->onset_flux(pc, h->mel, T, ldm, nm, h->env) == DX_OK);
  CHECK(G->onset_flux(pg, d->mel, T, ldm, nm, d->env) == DX_OK);
  snprintf(name, sizeof name, "%s_onset_env", tag);
  cmp_cols(name, d->env, h->env, T, 1, 0, 1, 0);

  for (int pass = 0; pass < 2; pass++) {
    int col = pass ? DX_FCOL_VALLEY0 : DX_FCOL_PEAK0;
    CHECK(C->col_max(cpu, h->feat, T, ldf, col, nbands, &mc) == DX_OK);
    CHECK(G->col_max(gpu, d->feat, T, ldf, col, nbands, &mg) == DX_OK);
    CHECK_MSG(rel(mg, mc) <= TOL, "%s: contrast max %.9g vs cpu %.9g", tag, mg, mc);
    CHECK(C->power_to_db(cpu, h->feat, T, ldf, col, nbands, 1e-10f, p->top_db, mc) == DX_OK);
    CHECK(G->power_to_db(gpu, d->feat, T, ldf, col, nbands, 1e-10f, p->top_db, mg) == DX_OK);
  }
  CHECK(C->cols_sub(cpu, h->feat, T, ldf, DX_FCOL_PEAK0, DX_FCOL_PEAK0, DX_FCOL_VALLEY0, nbands) == DX_OK);
  CHECK(G->cols_sub(gpu, d->feat, T, ldf, DX_FCOL_PEAK0, DX_FCOL_PEAK0, DX_FCOL_VALLEY0, nbands) == DX_OK);
  snprintf(name, sizeof name, "%s_contrast", tag);
  cmp_cols(name, d->feat, h->feat, T, ldf, DX_FCOL_PEAK0, nbands, 1);

  double m1[DX_FCOL_COUNT], s1[DX_FCOL_COUNT], m2[DX_FCOL_COUNT], s2[DX_FCOL_COUNT];
  int ncol = DX_FCOL_PEAK0 + nbands;
  CHECK(C->moments(cpu, h->feat, T, ldf, 0, ncol, m1, s1) == DX_OK);
  CHECK(G->moments(gpu, d->feat, T, ldf, 0, ncol, m2, s2) == DX_OK);
  for (int j = 0; j < ncol; j++)
    CHECK_MSG(rel(m2[j], m1[j]) <= TOL && rel(s2[j], s1[j]) <= TOL,
              "%s: feature column %d: mean %.9g sd %.9g vs cpu %.9g %.9g", tag, j, m2[j], s2[j], m1[j], s1[j]);
  CHECK(C->moments(cpu, h->mfcc, T, nmf, 0, nmf, m1, s1) == DX_OK);
  CHECK(G->moments(gpu, d->mfcc, T, nmf, 0, nmf, m2, s2) == DX_OK);
  CHECK_MSG(vec_rel(m2, m1, nmf) <= TOL && vec_rel(s2, s1, nmf) <= TOL, "%s: mfcc moments", tag);
}

DX_TEST(ops_equal_cpu) {
  if (!have_gpu()) SKIP(NO_GPU);
  dx_errbuf err = {{0}};
  CHECK(dx_backend_open("cpu", &cpu, &err) == DX_OK);
  /* TF32 allowed on the backend's cuBLAS handle: the feature products must not use it */
  setenv("DEMIX_CUDA_TF32", "1", 1);
  CHECK_MSG(dx_backend_open(gpu_side_device(), &gpu, &err) == DX_OK, "%s", err.msg);
  unsetenv("DEMIX_CUDA_TF32");
  if (!cpu || !gpu) {
    close_all(NULL, NULL);
    return;
  }
  dx_feat_params p;
  dx_feat_default_params(&p);
  const int T = 700, CH = 256; /* GPU chunks: 256, 256, 188 frames */
  dx_feat_plan *pc = NULL, *pg = NULL;
  CHECK(cpu->feat->plan_create(cpu, &p, T, &pc, &err) == DX_OK);
  CHECK_MSG(gpu->feat->plan_create(gpu, &p, CH, &pg, &err) == DX_OK, "%s", err.msg);
  CHECK(gpu->feat->chroma_power != NULL);
  if (!pc || !pg || !gpu->feat->chroma_power) goto out_plan;

  size_t n = 0;
  float *y = synth_music(18.0, p.sample_rate, &n);
  n = (size_t)(T - 1) * p.hop + 100; /* the last frame reaches past the end */
  CHECK((int)dx_feat_frame_count(n, p.hop) == T);
  const int nb = pc->n_bins, ldp = nb + 7, nm = p.n_mels, ldm = nm + 1, nc = p.n_chroma, ldf = DX_FCOL_COUNT;
  const int nbands = p.contrast_bands + 1, kb = 17, n_low = 20;
  size_t np = (size_t)T * ldp, nmel = (size_t)T * ldm, nfeat = (size_t)T * ldf, nch = (size_t)T * nc;
  size_t nmf = (size_t)T * p.n_mfcc;
  float *power = host_nan(np), *feat = host_nan(nfeat), *mel = host_nan(nmel), *chroma = host_nan(nch);
  float *kchroma = host_nan(nch), *chroma2 = host_nan(nch), *mfcc = host_nan(nmf), *env = host_nan(T);
  float *env_low = host_nan(T);
  float *dy = dev_of(y, n), *dpow = dev_nan(np), *dfeat = dev_nan(nfeat), *dmel = dev_nan(nmel);
  float *dchroma = dev_nan(nch), *dkchroma = dev_nan(nch), *dchroma2 = dev_nan(nch), *dmfcc = dev_nan(nmf);
  float *denv = dev_nan(T), *denv_low = dev_nan(T);
  const dx_feature_ops *C = cpu->feat, *G = gpu->feat;

  /* per-frame ops: the CPU in one call, the GPU in chunks */
  CHECK(C->stft_power(pc, y, 0, n, 0, T, power, ldp) == DX_OK);
  CHECK(C->spectral_frames(pc, power, ldp, T, feat, ldf) == DX_OK);
  CHECK(C->signal_frames(pc, y, 0, n, 0, T, feat, ldf) == DX_OK);
  CHECK(C->mel_power(pc, power, ldp, T, mel, ldm) == DX_OK);
  CHECK(C->chroma_power(pc, power, ldp, T, kb, chroma, kchroma, nc) == DX_OK);
  CHECK(C->chroma_power(pc, power, ldp, T, kb, chroma2, NULL, nc) == DX_OK);
  for (int f0 = 0; f0 < T; f0 += CH) {
    int nf = T - f0 < CH ? T - f0 : CH;
    float *pw = dpow + (size_t)f0 * ldp;
    /* the signal as the streaming analysis gives it: a window of just the
     * samples these frames read, in an allocation of its own */
    size_t lo, hi;
    dx_feat_frames_span(n, p.n_fft, p.hop, f0, nf, &lo, &hi);
    float *dwin = dev_of(y + lo, hi - lo);
    CHECK(G->stft_power(pg, dwin, lo, n, f0, nf, pw, ldp) == DX_OK);
    CHECK(G->spectral_frames(pg, pw, ldp, nf, dfeat + (size_t)f0 * ldf, ldf) == DX_OK);
    CHECK(G->signal_frames(pg, dwin, lo, n, f0, nf, dfeat + (size_t)f0 * ldf, ldf) == DX_OK);
    if (lo) CHECK(G->stft_power(pg, dwin, lo + 1, n, f0, nf, pw, ldp) == DX_ERR_INVALID);
    CHECK(gpu->sync(gpu) == DX_OK);
    gpu->free(gpu, dwin);
    CHECK(G->mel_power(pg, pw, ldp, nf, dmel + (size_t)f0 * ldm, ldm) == DX_OK);
    CHECK(G->chroma_power(pg, pw, ldp, nf, kb, dchroma + (size_t)f0 * nc, dkchroma + (size_t)f0 * nc, nc) == DX_OK);
    CHECK(G->chroma_power(pg, pw, ldp, nf, kb, dchroma2 + (size_t)f0 * nc, NULL, nc) == DX_OK);
  }
  cmp_cols("gpu_power", dpow, power, T, ldp, 0, nb, 0);
  excuse_rolloff_ties("gpu_frame_features", dfeat, feat, power, ldp, T, ldf, &p);
  cmp_cols("gpu_frame_features", dfeat, feat, T, ldf, 0, DX_FCOL_COUNT, 1);
  cmp_cols("gpu_mel", dmel, mel, T, ldm, 0, nm, 0);
  cmp_cols("gpu_chroma_raw", dchroma, chroma, T, nc, 0, nc, 1);
  cmp_cols("gpu_key_chroma_raw", dkchroma, kchroma, T, nc, 0, nc, 1);
  cmp_cols("gpu_chroma_nokey", dchroma2, chroma2, T, nc, 0, nc, 1);

  /* chroma_stft's max normalisation */
  CHECK(C->rows_normalize_max(cpu, chroma, T, nc, nc) == DX_OK);
  CHECK(C->rows_normalize_max(cpu, kchroma, T, nc, nc) == DX_OK);
  CHECK(G->rows_normalize_max(gpu, dchroma, T, nc, nc) == DX_OK);
  CHECK(G->rows_normalize_max(gpu, dkchroma, T, nc, nc) == DX_OK);
  cmp_cols("gpu_chroma", dchroma, chroma, T, nc, 0, nc, 1);
  cmp_cols("gpu_key_chroma", dkchroma, kchroma, T, nc, 0, nc, 1);

  /* dB mel with the track's max, MFCC (DCT), onset envelopes, contrast, the
   * reported moments; then the low bands' onset envelope and chroma's moments */
  steps_bufs hs = {mel, feat, mfcc, env}, ds = {dmel, dfeat, dmfcc, denv};
  whole_track_steps_equal("gpu", pc, pg, T, ldm, ldf, &hs, &ds);
  CHECK(C->onset_flux(pc, mel, T, ldm, n_low, env_low) == DX_OK);
  CHECK(G->onset_flux(pg, dmel, T, ldm, n_low, denv_low) == DX_OK);
  cmp_cols("gpu_onset_env_low", denv_low, env_low, T, 1, 0, 1, 0);
  double m1[DX_FCOL_COUNT], s1[DX_FCOL_COUNT], m2[DX_FCOL_COUNT], s2[DX_FCOL_COUNT];
  CHECK(C->moments(cpu, chroma, T, nc, 0, nc, m1, s1) == DX_OK);
  CHECK(G->moments(gpu, dchroma, T, nc, 0, nc, m2, s2) == DX_OK);
  CHECK_MSG(vec_rel(m2, m1, nc) <= TOL && vec_rel(s2, s1, nc) <= TOL, "chroma moments");
  CHECK(G->moments(gpu, dfeat, T, ldf, DX_FCOL_RMS, 1, m2, NULL) == DX_OK); /* std_host may be NULL */
  CHECK(gpu->sync(gpu) == DX_OK);
  float mc = 0, mg = 0;
  /* no frames or rows: every op returns at once (a launch of zero blocks
   * is an invalid configuration), col_max gives -inf, moments 0 */
  CHECK(G->stft_power(pg, dy, 0, n, 0, 0, dpow, ldp) == DX_OK);
  CHECK(G->spectral_frames(pg, dpow, ldp, 0, dfeat, ldf) == DX_OK);
  CHECK(G->signal_frames(pg, dy, 0, n, 0, 0, dfeat, ldf) == DX_OK);
  CHECK(G->mel_power(pg, dpow, ldp, 0, dmel, ldm) == DX_OK);
  CHECK(G->chroma_power(pg, dpow, ldp, 0, kb, dchroma, dkchroma, nc) == DX_OK);
  CHECK(G->rows_normalize_max(gpu, dchroma, 0, nc, nc) == DX_OK);
  CHECK(G->power_to_db(gpu, dmel, 0, ldm, 0, nm, 1e-10f, p.top_db, mc) == DX_OK);
  CHECK(G->cols_sub(gpu, dfeat, 0, ldf, DX_FCOL_PEAK0, DX_FCOL_PEAK0, DX_FCOL_VALLEY0, nbands) == DX_OK);
  CHECK(G->gemm_nt(gpu, 0, p.n_mfcc, nm, dmel, ldm, pg->dct, nm, dmfcc, p.n_mfcc) == DX_OK);
  CHECK(G->onset_flux(pg, dmel, 0, ldm, nm, denv) == DX_OK);
  mg = 0;
  CHECK(G->col_max(gpu, dmel, 0, ldm, 0, nm, &mg) == DX_OK && mg == -INFINITY);
  m2[0] = s2[0] = NAN;
  CHECK(G->moments(gpu, dfeat, 0, ldf, 0, 1, m2, s2) == DX_OK && m2[0] == 0 && s2[0] == 0);
  CHECK(gpu->sync(gpu) == DX_OK);

  float *dbufs[] = {dy, dpow, dfeat, dmel, dchroma, dkchroma, dchroma2, dmfcc, denv, denv_low};
  for (size_t i = 0; i < sizeof dbufs / sizeof dbufs[0]; i++) gpu->free(gpu, dbufs[i]);
  float *hbufs[] = {y, power, feat, mel, chroma, kchroma, chroma2, mfcc, env, env_low};
  for (size_t i = 0; i < sizeof hbufs / sizeof hbufs[0]; i++) free(hbufs[i]);
out_plan:
  close_all(pc, pg);
}

/* ---- long inputs ---- */

static double lcg01(uint64_t *s) { /* uniform in [0, 1) */
  *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
  return (double)(*s >> 11) * (1.0 / 9007199254740992.0);
}

/* More frames than a 65,535-block grid dimension (an hour at hop 512 is
 * about 155,000), an odd count, on the CPU's and the GPU's one call each:
 * the signal features of every frame; the STFT and spectral features of
 * chunks past frame 65,535 and at the padded end; and on a synthetic power
 * spectrogram (noise-like bins under a falling envelope, frame gains over
 * 30 dB, silent frames) spectral_frames, mel_power, chroma_power and the
 * whole-track steps: max, dB, DCT, onset flux, contrast, moments. */
DX_TEST(long_inputs_equal_cpu) {
  if (!have_gpu()) SKIP(NO_GPU);
  dx_errbuf err = {{0}};
  CHECK(dx_backend_open("cpu", &cpu, &err) == DX_OK);
  CHECK_MSG(dx_backend_open(gpu_side_device(), &gpu, &err) == DX_OK, "%s", err.msg);
  if (!cpu || !gpu) {
    close_all(NULL, NULL);
    return;
  }
  dx_feat_params p;
  dx_feat_default_params(&p);
  const int T = 70001, CH = 256;
  dx_feat_plan *pc = NULL, *pg = NULL;
  CHECK(cpu->feat->plan_create(cpu, &p, CH, &pc, &err) == DX_OK);
  CHECK_MSG(gpu->feat->plan_create(gpu, &p, CH, &pg, &err) == DX_OK, "%s", err.msg);
  if (!pc || !pg) goto out_plan;
  const dx_feature_ops *C = cpu->feat, *G = gpu->feat;
  const int nb = pc->n_bins, ldp = nb + 3, nm = p.n_mels, ldm = nm + 1, nc = p.n_chroma, ldf = DX_FCOL_COUNT;
  const int nbands = p.contrast_bands + 1, kb = 17, nmf = p.n_mfcc;

  /* a tone in noise, silent around frame 65,536; the last frame reaches past the end */
  size_t n = (size_t)(T - 1) * p.hop + 300;
  CHECK((int)dx_feat_frame_count(n, p.hop) == T);
  float *y = malloc(n * sizeof *y);
  uint64_t rs = 99;
  for (size_t i = 0; i < n; i++) {
    int silent = i >= (size_t)65530 * p.hop && i < (size_t)65545 * p.hop;
    y[i] = silent ? 0.0f : (float)(0.3 * sin(2 * M_PI * 440.0 * (double)(i % 22050) / 22050.0) + 0.05 * (2 * lcg01(&rs) - 1));
  }
  size_t nfeat = (size_t)T * ldf, np = (size_t)T * ldp;
  float *feat = host_nan(nfeat), *dy = dev_of(y, n), *dfeat = dev_nan(nfeat);

  /* signal features of every frame in one call */
  CHECK(C->signal_frames(pc, y, 0, n, 0, T, feat, ldf) == DX_OK);
  CHECK(G->signal_frames(pg, dy, 0, n, 0, T, dfeat, ldf) == DX_OK);
  cmp_cols("gpu_long_signal_features", dfeat, feat, T, ldf, DX_FCOL_RMS, 2, 1);

  /* STFT and spectral features of frames [65,400, 65,700) and the last 300, in chunks */
  const int R = 300;
  float *power = host_nan((size_t)R * ldp), *dpow = dev_nan((size_t)R * ldp);
  float *rfeat = host_nan((size_t)R * ldf), *drfeat = dev_nan((size_t)R * ldf);
  const size_t starts[2] = {65400, (size_t)T - R};
  for (int s = 0; s < 2; s++) {
    for (int f = 0; f < R; f += CH) {
      int nf = R - f < CH ? R - f : CH;
      size_t f0 = starts[s] + f;
      float *pw = dpow + (size_t)f * ldp, *fd = drfeat + (size_t)f * ldf;
      CHECK(C->stft_power(pc, y, 0, n, f0, nf, power + (size_t)f * ldp, ldp) == DX_OK);
      CHECK(C->spectral_frames(pc, power + (size_t)f * ldp, ldp, nf, rfeat + (size_t)f * ldf, ldf) == DX_OK);
      CHECK(C->signal_frames(pc, y, 0, n, f0, nf, rfeat + (size_t)f * ldf, ldf) == DX_OK);
      CHECK(G->stft_power(pg, dy, 0, n, f0, nf, pw, ldp) == DX_OK);
      CHECK(G->spectral_frames(pg, pw, ldp, nf, fd, ldf) == DX_OK);
      CHECK(G->signal_frames(pg, dy, 0, n, f0, nf, fd, ldf) == DX_OK);
    }
    const char *pw_name = s ? "gpu_long_power_end" : "gpu_long_power_65536";
    const char *ft_name = s ? "gpu_long_frame_features_end" : "gpu_long_frame_features_65536";
    cmp_cols(pw_name, dpow, power, R, ldp, 0, nb, 0);
    excuse_rolloff_ties(ft_name, drfeat, rfeat, power, ldp, R, ldf, &p);
    cmp_cols(ft_name, drfeat, rfeat, R, ldf, 0, DX_FCOL_PEAK0 + 2 * nbands, 1);
  }
  gpu->free(gpu, dpow);
  gpu->free(gpu, drfeat);
  free(power);
  free(rfeat);

  /* a synthetic power spectrogram of T frames */
  power = malloc(np * sizeof *power);
  for (int t = 0; t < T; t++) {
    float *P = power + (size_t)t * ldp;
    double gain = t % 997 == 5 ? 0.0 : pow(10.0, -3.0 * lcg01(&rs));
    for (int k = 0; k < ldp; k++) {
      double env = 1.0 / (1.0 + (k / 40.0) * (k / 40.0));
      P[k] = k < nb ? (float)(gain * env * -log(1.0 - lcg01(&rs))) : NAN;
    }
  }
  dpow = dev_of(power, np);
  size_t nmel = (size_t)T * ldm, nch = (size_t)T * nc;
  float *mel = host_nan(nmel), *chroma = host_nan(nch), *kchroma = host_nan(nch), *mfcc = host_nan((size_t)T * nmf);
  float *env = host_nan(T), *dmel = dev_nan(nmel), *dchroma = dev_nan(nch), *dkchroma = dev_nan(nch);
  float *dmfcc = dev_nan((size_t)T * nmf), *denv = dev_nan(T);
  CHECK(C->spectral_frames(pc, power, ldp, T, feat, ldf) == DX_OK);
  CHECK(G->spectral_frames(pg, dpow, ldp, T, dfeat, ldf) == DX_OK);
  CHECK(C->mel_power(pc, power, ldp, T, mel, ldm) == DX_OK);
  CHECK(G->mel_power(pg, dpow, ldp, T, dmel, ldm) == DX_OK);
  CHECK(C->chroma_power(pc, power, ldp, T, kb, chroma, kchroma, nc) == DX_OK);
  CHECK(G->chroma_power(pg, dpow, ldp, T, kb, dchroma, dkchroma, nc) == DX_OK);
  CHECK(C->rows_normalize_max(cpu, chroma, T, nc, nc) == DX_OK);
  CHECK(G->rows_normalize_max(gpu, dchroma, T, nc, nc) == DX_OK);
  excuse_rolloff_ties("gpu_long_spectral", dfeat, feat, power, ldp, T, ldf, &p);
  cmp_cols("gpu_long_spectral", dfeat, feat, T, ldf, 0, DX_FCOL_COUNT, 1);
  cmp_cols("gpu_long_mel", dmel, mel, T, ldm, 0, nm, 0);
  cmp_cols("gpu_long_chroma", dchroma, chroma, T, nc, 0, nc, 1);
  cmp_cols("gpu_long_key_chroma_raw", dkchroma, kchroma, T, nc, 0, nc, 1);

  steps_bufs hs = {mel, feat, mfcc, env}, ds = {dmel, dfeat, dmfcc, denv};
  whole_track_steps_equal("gpu_long", pc, pg, T, ldm, ldf, &hs, &ds);
  CHECK(gpu->sync(gpu) == DX_OK);
  float *dbufs[] = {dy, dfeat, dpow, dmel, dchroma, dkchroma, dmfcc, denv};
  for (size_t i = 0; i < sizeof dbufs / sizeof dbufs[0]; i++) gpu->free(gpu, dbufs[i]);
  float *hbufs[] = {y, feat, power, mel, chroma, kchroma, mfcc, env};
  for (size_t i = 0; i < sizeof hbufs / sizeof hbufs[0]; i++) free(hbufs[i]);
out_plan:
  close_all(pc, pg);
}

/* ---- pipeline level ---- */

static dx_audio make_track(double seconds) {
  size_t n = 0;
  float *m = synth_music(seconds, 44100, &n);
  float *st = malloc(2 * n * sizeof *st);
  for (size_t i = 0; i < n; i++) {
    st[i] = m[i];
    st[n + i] = 0.7f * m[i];
  }
  free(m);
  return (dx_audio){.data = st, .channels = 2, .samplerate = 44100, .frames = n};
}

/* Analyse au (or, with au NULL, the file at path) with a fresh backend
 * and analyzer of `device` with params p. */
static dx_status analyse_with(const char *device, const dx_analysis_params *p, const dx_audio *au, const char *path,
                              dx_analysis_result *r, dx_errbuf *err) {
  dx_backend *be = NULL;
  dx_analyzer *an = NULL;
  memset(r, 0, sizeof *r);
  dx_status st = dx_backend_open(device, &be, err);
  if (st == DX_OK) st = dx_analyzer_open(be, p, &an, err);
  if (st == DX_OK)
    st = au ? dx_analyzer_run(an, au, DX_AF_ALL, NULL, NULL, r, err)
            : dx_analyzer_run_file(an, path, DX_AF_ALL, NULL, NULL, r, err);
  dx_analyzer_close(an);
  dx_backend_close(be);
  return st;
}

static dx_status analyse(const char *device, int threads, const dx_audio *au, dx_analysis_result *r, dx_errbuf *err) {
  dx_analysis_params p;
  dx_analysis_default_params(&p);
  p.threads = threads;
  return analyse_with(device, &p, au, NULL, r, err);
}

static void stat_check(const char *what, const char *name, dx_stat g, dx_stat c) {
  CHECK_MSG(rel(g.mean, c.mean) <= TOL && rel(g.std, c.std) <= TOL, "%s: %s mean %.9g sd %.9g vs cpu %.9g %.9g", what,
            name, g.mean, g.std, c.mean, c.std);
}

static void compare_results(const dx_analysis_result *g, const dx_analysis_result *c, const char *what) {
  CHECK_MSG(g->frames == c->frames, "%s: %zu frames vs cpu %zu", what, g->frames, c->frames);
#define SCAL(field) CHECK_MSG(rel(g->field, c->field) <= TOL, "%s: " #field " %.9g vs cpu %.9g", what, g->field, c->field)
  SCAL(tempo);
  SCAL(tempo_confidence);
  SCAL(onset_rate);
  SCAL(danceability);
  SCAL(energy);
  SCAL(key_confidence);
  SCAL(lufs);
  SCAL(lra);
  SCAL(true_peak_db);
#undef SCAL
  stat_check(what, "rms", g->rms, c->rms);
  stat_check(what, "centroid", g->centroid, c->centroid);
  stat_check(what, "bandwidth", g->bandwidth, c->bandwidth);
  stat_check(what, "rolloff", g->rolloff, c->rolloff);
  stat_check(what, "flatness", g->flatness, c->flatness);
  stat_check(what, "zcr", g->zcr, c->zcr);
  CHECK_MSG(g->key_index == c->key_index, "%s: key %s vs cpu %s", what, g->key, c->key);
  CHECK_MSG(g->n_beats == c->n_beats, "%s: %zu beats vs cpu %zu", what, g->n_beats, c->n_beats);
  for (size_t i = 0; i < g->n_beats && i < c->n_beats; i++)
    CHECK_MSG(fabs(g->beats[i] - c->beats[i]) < 1e-6, "%s: beat %zu at %.6f s vs cpu %.6f s", what, i, g->beats[i],
              c->beats[i]);
  CHECK(g->n_mfcc == c->n_mfcc);
  double a[DX_MAX_MFCC] = {0}, b[DX_MAX_MFCC] = {0};
  for (int pass = 0; pass < 2; pass++) {
    for (int i = 0; i < c->n_mfcc; i++) {
      a[i] = pass ? g->mfcc[i].std : g->mfcc[i].mean;
      b[i] = pass ? c->mfcc[i].std : c->mfcc[i].mean;
    }
    CHECK_MSG(vec_rel(a, b, c->n_mfcc) <= TOL, "%s: mfcc %s", what, pass ? "stds" : "means");
    /* Contrast: the top band (5.5 to 11 kHz at 22,050 Hz) reaches into the
     * resampler's stopband, where magnitudes sit at the FFT's rounding
     * floor and any two float32 transforms differ (its valley moves by
     * about 1e-3); the other bands' valleys hold real signal. */
    for (int i = 0; i < DX_CONTRAST_N; i++) {
      a[i] = pass ? g->contrast[i].std : g->contrast[i].mean;
      b[i] = pass ? c->contrast[i].std : c->contrast[i].mean;
    }
    const int top = DX_CONTRAST_N - 1;
    CHECK_MSG(vec_rel(a, b, top) <= TOL, "%s: contrast %s of bands 0-%d (rel %.3g)", what, pass ? "stds" : "means",
              top - 1, vec_rel(a, b, top));
    CHECK_MSG(rel(a[top], b[top]) <= CONTRAST_TOP_TOL, "%s: contrast %s of the top band %.9g vs cpu %.9g", what,
              pass ? "std" : "mean", a[top], b[top]);
  }
  CHECK_MSG(vec_rel(g->chroma, c->chroma, 12) <= TOL, "%s: chroma", what);
}

static dx_audio track;
static dx_analysis_result cpu_ref;

DX_TEST(pipeline_equals_cpu) {
  if (!have_gpu()) SKIP(NO_GPU);
  dx_errbuf err = {{0}};
  track = make_track(30.0);
  dx_audio shorter = make_track(12.0);
  dx_analysis_result cpu_short, g;
  CHECK(analyse("cpu", 1, &track, &cpu_ref, &err) == DX_OK);
  CHECK(analyse("cpu", 1, &shorter, &cpu_short, &err) == DX_OK);

  /* one CUDA analyzer: the long track, then the short one in the same buffers */
  dx_backend *be = NULL;
  dx_analyzer *an = NULL;
  dx_analysis_params p;
  dx_analysis_default_params(&p);
  dx_status st = dx_backend_open(gpu_side_device(), &be, &err);
  if (st == DX_OK) st = dx_analyzer_open(be, &p, &an, &err);
  CHECK_MSG(st == DX_OK, "%s", err.msg);
  if (st == DX_OK) {
    st = dx_analyzer_run(an, &track, DX_AF_ALL, NULL, NULL, &g, &err);
    CHECK_MSG(st == DX_OK, "%s", err.msg);
    if (st == DX_OK) compare_results(&g, &cpu_ref, "cuda 30 s");
    fprintf(stderr, "  cpu: tempo %.2f key %s; cuda: tempo %.2f key %s\n", cpu_ref.tempo, cpu_ref.key, g.tempo, g.key);
    dx_analysis_result_free(&g);
    st = dx_analyzer_run(an, &shorter, DX_AF_ALL, NULL, NULL, &g, &err);
    CHECK_MSG(st == DX_OK, "%s", err.msg);
    if (st == DX_OK) compare_results(&g, &cpu_short, "cuda 12 s after 30 s");
    dx_analysis_result_free(&g);
  }
  dx_analyzer_close(an);
  dx_backend_close(be);
  dx_analysis_result_free(&cpu_short);
  free(shorter.data);
}

/* Analyse the file at path with a fresh backend of `device`, streamed
 * (its signal read back from a scratch file a window at a time) with
 * chunk_frames frames per window. */
static dx_status analyse_streamed(const char *device, int chunk_frames, const char *path, dx_analysis_result *r,
                                  dx_errbuf *err) {
  dx_analysis_params p;
  dx_analysis_default_params(&p);
  p.stream_min_seconds = 0;
  p.chunk_frames = chunk_frames;
  return analyse_with(device, &p, NULL, path, r, err);
}

DX_TEST(streamed_file_equals_cpu) {
  if (!have_gpu()) SKIP(NO_GPU);
  if (!track.data) SKIP("the pipeline test did not run");
  dx_errbuf err = {{0}};
  char path[128];
  snprintf(path, sizeof path, "/tmp/gpu_features_%d.wav", (int)getpid());
  CHECK(dx_audio_write(path, track.data, track.channels, track.frames, track.samplerate, DX_ENC_WAV_FLOAT, &err) ==
        DX_OK);
  dx_analysis_result c, g;
  dx_status sc = analyse_streamed("cpu", 1024, path, &c, &err);
  CHECK_MSG(sc == DX_OK, "cpu: %s", err.msg);
  /* windows of 200 frames: 7 uploads, the last one partial and padded */
  dx_status sg = analyse_streamed(gpu_side_device(), 200, path, &g, &err);
  CHECK_MSG(sg == DX_OK, "cuda: %s", err.msg);
  if (sc == DX_OK && sg == DX_OK) compare_results(&g, &c, "cuda streamed 30 s");
  dx_analysis_result_free(&c);
  dx_analysis_result_free(&g);
  unlink(path);
}

typedef struct {
  dx_analysis_result r;
  dx_status st;
  dx_errbuf err;
} worker_out;

static void *worker(void *arg) {
  worker_out *o = arg;
  o->st = analyse(gpu_side_device(), 2, &track, &o->r, &o->err);
  return NULL;
}

DX_TEST(workers_share_the_gpu) {
  if (!have_gpu()) SKIP(NO_GPU);
  if (!track.data) SKIP("the pipeline test did not run");
  pthread_t th[2];
  int started[2] = {0, 0};
  worker_out out[2];
  memset(out, 0, sizeof out);
  for (int i = 0; i < 2; i++) started[i] = pthread_create(&th[i], NULL, worker, &out[i]) == 0;
  for (int i = 0; i < 2; i++) {
    CHECK(started[i]);
    if (!started[i]) continue;
    pthread_join(th[i], NULL);
    CHECK_MSG(out[i].st == DX_OK, "worker %d: %s", i, out[i].err.msg);
    if (out[i].st == DX_OK) compare_results(&out[i].r, &cpu_ref, "worker");
    dx_analysis_result_free(&out[i].r);
  }
  dx_analysis_result_free(&cpu_ref);
  free(track.data);
  track.data = NULL;
}

int main(int argc, char **argv) {
  static const dx_test_case cases[] = {DX_T(ops_equal_cpu), DX_T(long_inputs_equal_cpu), DX_T(pipeline_equals_cpu),
                                       DX_T(streamed_file_equals_cpu), DX_T(workers_share_the_gpu)};
  if (!have_gpu()) {
    printf("gpu_features: skipped: " NO_GPU "\n");
    return DX_TEST_SKIPPED;
  }
  gpu_side_note("gpu_features");
  return dx_test_run(cases, sizeof cases / sizeof cases[0], argc, argv);
}
