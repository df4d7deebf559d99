/* gpu_features.c (GPU tier): the CUDA feature backend equals the CPU
 * reference. Op level: the power spectrogram, mel and chroma filterbanks,
 * per-frame spectral and signal features and the onset envelope within
 * 1e-4 relative L2 error. Pipeline level, on a 30 s music-like stereo
 * 44.1 kHz track: every feature (tempo, beats, key, energy, RMS, spectral
 * shape, contrast, MFCC, chroma) within 1e-4 relative error (vectors: max
 * difference over the vector's largest magnitude). Then two worker threads
 * with their own CUDA backends (streams) analyse at once and get the same
 * answers. Skips with a message when no GPU is visible. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "dx_analysis.h"
#include "dx_test.h"
#include "../unit/test_analysis_synth.h"

#define TOL 1e-4

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
  if (!dx_backend_cuda_available(desc, sizeof desc)) return 0;
  fprintf(stderr, "  GPU: %s\n", desc);
  return 1;
}

/* Run op `name` on both backends and compare [rows][cols] outputs. */
static void compare_dev(dx_backend *gpu, const float *dev, const float *ref, size_t n, const char *name) {
  float *h = malloc(n * sizeof *h);
  CHECK(gpu->download(gpu, h, dev, n * sizeof(float)) == DX_OK);
  double e = dx_test_rel_l2(h, ref, n);
  CHECK_MSG(e <= TOL, "%s: relative L2 %.3g", name, e);
  if (e > TOL) dx_test_dump(name, h, n);
  free(h);
}

DX_TEST(ops_equal_cpu) {
  if (!have_gpu()) SKIP("no CUDA device visible: the GPU tier runs on a GPU host");
  dx_backend *cpu = NULL, *gpu = NULL;
  dx_errbuf err = {{0}};
  CHECK(dx_backend_open("cpu", &cpu, &err) == DX_OK);
  CHECK_MSG(dx_backend_open("cuda", &gpu, &err) == DX_OK, "%s", err.msg);
  if (!cpu || !gpu) return;
  dx_feat_params p;
  dx_feat_default_params(&p);
  int T = 400;
  dx_feat_plan *pc = NULL, *pg = NULL;
  CHECK(cpu->feat->plan_create(cpu, &p, T, &pc, &err) == DX_OK);
  CHECK_MSG(gpu->feat->plan_create(gpu, &p, T, &pg, &err) == DX_OK, "%s", err.msg);
  if (!pc || !pg) return;
  size_t n = (size_t)(T - 1) * p.hop;
  float *y = synth_music(n / 22050.0 + 1, 22050, &n);
  n = (size_t)(T - 1) * p.hop;
  int nb = pc->n_bins;
  size_t np = (size_t)T * nb;
  float *power = malloc(np * sizeof(float)), *feat = calloc((size_t)T * DX_FCOL_COUNT, sizeof(float));
  float *mel = malloc((size_t)T * p.n_mels * sizeof(float)), *chroma = malloc((size_t)T * 12 * sizeof(float));
  float *env = malloc(T * sizeof(float));
  float *dy, *dpow, *dfeat, *dmel, *dchroma, *denv;
  CHECK(gpu->alloc(gpu, n * sizeof(float), (void **)&dy) == DX_OK);
  CHECK(gpu->alloc(gpu, np * sizeof(float), (void **)&dpow) == DX_OK);
  CHECK(gpu->alloc(gpu, (size_t)T * DX_FCOL_COUNT * sizeof(float), (void **)&dfeat) == DX_OK);
  CHECK(gpu->alloc(gpu, (size_t)T * p.n_mels * sizeof(float), (void **)&dmel) == DX_OK);
  CHECK(gpu->alloc(gpu, (size_t)T * 12 * sizeof(float), (void **)&dchroma) == DX_OK);
  CHECK(gpu->alloc(gpu, T * sizeof(float), (void **)&denv) == DX_OK);
  CHECK(gpu->upload(gpu, dy, y, n * sizeof(float)) == DX_OK);
  CHECK(gpu->memset0(gpu, dfeat, (size_t)T * DX_FCOL_COUNT * sizeof(float)) == DX_OK);

  CHECK(cpu->feat->stft_power(pc, y, n, 0, T, power, nb) == DX_OK);
  CHECK(gpu->feat->stft_power(pg, dy, n, 0, T, dpow, nb) == DX_OK);
  compare_dev(gpu, dpow, power, np, "gpu_power");

  CHECK(cpu->feat->spectral_frames(pc, power, nb, T, feat, DX_FCOL_COUNT) == DX_OK);
  CHECK(cpu->feat->signal_frames(pc, y, n, 0, T, feat, DX_FCOL_COUNT) == DX_OK);
  CHECK(gpu->feat->spectral_frames(pg, dpow, nb, T, dfeat, DX_FCOL_COUNT) == DX_OK);
  CHECK(gpu->feat->signal_frames(pg, dy, n, 0, T, dfeat, DX_FCOL_COUNT) == DX_OK);
  compare_dev(gpu, dfeat, feat, (size_t)T * DX_FCOL_COUNT, "gpu_frame_features");

  CHECK(cpu->feat->gemm_nt(cpu, T, p.n_mels, nb, power, nb, pc->mel_fb, nb, mel, p.n_mels) == DX_OK);
  CHECK(gpu->feat->gemm_nt(gpu, T, p.n_mels, nb, dpow, nb, pg->mel_fb, nb, dmel, p.n_mels) == DX_OK);
  compare_dev(gpu, dmel, mel, (size_t)T * p.n_mels, "gpu_mel");
  float mc, mg;
  CHECK(cpu->feat->col_max(cpu, mel, T, p.n_mels, 0, p.n_mels, &mc) == DX_OK);
  CHECK(gpu->feat->col_max(gpu, dmel, T, p.n_mels, 0, p.n_mels, &mg) == DX_OK);
  CHECK(rel(mg, mc) <= TOL);
  CHECK(cpu->feat->power_to_db(cpu, mel, T, p.n_mels, 0, p.n_mels, 1e-10f, 80, mc) == DX_OK);
  CHECK(gpu->feat->power_to_db(gpu, dmel, T, p.n_mels, 0, p.n_mels, 1e-10f, 80, mc) == DX_OK);
  compare_dev(gpu, dmel, mel, (size_t)T * p.n_mels, "gpu_mel_db");
  CHECK(cpu->feat->onset_flux(pc, mel, T, p.n_mels, p.n_mels, env) == DX_OK);
  CHECK(gpu->feat->onset_flux(pg, dmel, T, p.n_mels, p.n_mels, denv) == DX_OK);
  compare_dev(gpu, denv, env, T, "gpu_onset_env");

  CHECK(cpu->feat->gemm_nt(cpu, T, 12, nb, power, nb, pc->chroma_fb, nb, chroma, 12) == DX_OK);
  CHECK(cpu->feat->rows_normalize_max(cpu, chroma, T, 12, 12) == DX_OK);
  CHECK(gpu->feat->gemm_nt(gpu, T, 12, nb, dpow, nb, pg->chroma_fb, nb, dchroma, 12) == DX_OK);
  CHECK(gpu->feat->rows_normalize_max(gpu, dchroma, T, 12, 12) == DX_OK);
  compare_dev(gpu, dchroma, chroma, (size_t)T * 12, "gpu_chroma");
  double m1[12], s1[12], m2[12], s2[12];
  CHECK(cpu->feat->moments(cpu, chroma, T, 12, 0, 12, m1, s1) == DX_OK);
  CHECK(gpu->feat->moments(gpu, dchroma, T, 12, 0, 12, m2, s2) == DX_OK);
  CHECK(vec_rel(m2, m1, 12) <= TOL && vec_rel(s2, s1, 12) <= TOL);

  gpu->free(gpu, dy);
  gpu->free(gpu, dpow);
  gpu->free(gpu, dfeat);
  gpu->free(gpu, dmel);
  gpu->free(gpu, dchroma);
  gpu->free(gpu, denv);
  free(y);
  free(power);
  free(feat);
  free(mel);
  free(chroma);
  free(env);
  cpu->feat->plan_destroy(pc);
  gpu->feat->plan_destroy(pg);
  dx_backend_close(cpu);
  dx_backend_close(gpu);
}

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

static dx_status analyse(const char *device, const dx_audio *au, dx_analysis_result *r, dx_errbuf *err) {
  dx_backend *be = NULL;
  dx_analyzer *an = NULL;
  dx_analysis_params p;
  dx_analysis_default_params(&p);
  memset(r, 0, sizeof *r);
  dx_status st = dx_backend_open(device, &be, err);
  if (st == DX_OK) st = dx_analyzer_open(be, &p, &an, err);
  if (st == DX_OK) st = dx_analyzer_run(an, au, DX_AF_ALL, NULL, NULL, r, err);
  dx_analyzer_close(an);
  dx_backend_close(be);
  return st;
}

static void compare_results(const dx_analysis_result *g, const dx_analysis_result *c, const char *what) {
#define SCAL(field) CHECK_MSG(rel(g->field, c->field) <= TOL, "%s: " #field " %.9g vs cpu %.9g", what, g->field, c->field)
  SCAL(tempo);
  SCAL(tempo_confidence);
  SCAL(onset_rate);
  SCAL(energy);
  SCAL(rms.mean);
  SCAL(rms.std);
  SCAL(centroid.mean);
  SCAL(centroid.std);
  SCAL(bandwidth.mean);
  SCAL(bandwidth.std);
  SCAL(rolloff.mean);
  SCAL(rolloff.std);
  SCAL(flatness.mean);
  SCAL(flatness.std);
  SCAL(zcr.mean);
  SCAL(zcr.std);
  SCAL(key_confidence);
  SCAL(lufs);
  SCAL(lra);
  SCAL(true_peak_db);
#undef SCAL
  CHECK_MSG(g->key_index == c->key_index, "%s: key %s vs cpu %s", what, g->key, c->key);
  CHECK_MSG(g->n_beats == c->n_beats, "%s: %zu beats vs cpu %zu", what, g->n_beats, c->n_beats);
  for (size_t i = 0; i < g->n_beats && i < c->n_beats; i++) CHECK(fabs(g->beats[i] - c->beats[i]) < 1e-6);
  double a[DX_MAX_MFCC] = {0}, b[DX_MAX_MFCC] = {0};
  for (int i = 0; i < c->n_mfcc; i++) {
    a[i] = g->mfcc[i].mean;
    b[i] = c->mfcc[i].mean;
  }
  CHECK_MSG(vec_rel(a, b, c->n_mfcc) <= TOL, "%s: mfcc means", what);
  for (int i = 0; i < c->n_mfcc; i++) {
    a[i] = g->mfcc[i].std;
    b[i] = c->mfcc[i].std;
  }
  CHECK_MSG(vec_rel(a, b, c->n_mfcc) <= TOL, "%s: mfcc stds", what);
  CHECK_MSG(vec_rel(g->chroma, c->chroma, 12) <= TOL, "%s: chroma", what);
  for (int i = 0; i < DX_CONTRAST_N; i++) {
    a[i] = g->contrast[i].mean;
    b[i] = c->contrast[i].mean;
  }
  CHECK_MSG(vec_rel(a, b, DX_CONTRAST_N) <= TOL, "%s: contrast", what);
}

static dx_audio track;
static dx_analysis_result cpu_ref;

DX_TEST(pipeline_equals_cpu) {
  if (!have_gpu()) SKIP("no CUDA device visible: the GPU tier runs on a GPU host");
  dx_errbuf err = {{0}};
  track = make_track(30.0);
  CHECK(analyse("cpu", &track, &cpu_ref, &err) == DX_OK);
  dx_analysis_result g;
  dx_status st = analyse("cuda", &track, &g, &err);
  CHECK_MSG(st == DX_OK, "%s", err.msg);
  if (st == DX_OK) compare_results(&g, &cpu_ref, "cuda");
  fprintf(stderr, "  cpu: tempo %.2f key %s; cuda: tempo %.2f key %s\n", cpu_ref.tempo, cpu_ref.key, g.tempo, g.key);
  dx_analysis_result_free(&g);
}

typedef struct {
  dx_analysis_result r;
  dx_status st;
  dx_errbuf err;
} worker_out;

static void *worker(void *arg) {
  worker_out *o = arg;
  o->st = analyse("cuda", &track, &o->r, &o->err);
  return NULL;
}

DX_TEST(workers_share_the_gpu) {
  if (!have_gpu() || !track.data) SKIP("no CUDA device visible");
  pthread_t th[2];
  worker_out out[2];
  memset(out, 0, sizeof out);
  for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, worker, &out[i]);
  for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
  for (int i = 0; i < 2; i++) {
    CHECK_MSG(out[i].st == DX_OK, "worker %d: %s", i, out[i].err.msg);
    if (out[i].st == DX_OK) compare_results(&out[i].r, &cpu_ref, "worker");
    dx_analysis_result_free(&out[i].r);
  }
  dx_analysis_result_free(&cpu_ref);
  free(track.data);
}

DX_TEST_MAIN(DX_T(ops_equal_cpu), DX_T(pipeline_equals_cpu), DX_T(workers_share_the_gpu))
