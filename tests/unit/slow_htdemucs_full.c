/* slow_htdemucs_full.c (slow tier): the long-track procedure around the
 * released htdemucs shapes on the CPU, from htdemucs_full_random (made by
 * tools/make-reference; looked for in $DEMIX_REFERENCE/demucs/, skipped when
 * absent; its forward is checked in slow_official_forward.c):
 *   - the long-track procedure on a track exactly one segment long (shifts 0,
 *     overlap 0) equals the outer normalisation around one forward call: one
 *     chunk, run at its own length, weights that cancel (with the default
 *     overlap 0.25 the official procedure runs a second chunk at offset
 *     0.75 * segment, as apply.c does, so the two differ);
 *   - a 20 s track (three chunks, one shift, seeded) gives finite stems of the
 *     mix's size, the same bits twice. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dx_apply.h"
#include "dx_backend.h"
#include "dx_model.h"
#include "dx_test.h"

static dx_model *model;
static dx_backend *be;

static int setup(void) {
  if (model) return 1;
  const char *path = dx_test_ref_path("demucs/htdemucs_full_random.th");
  if (access(path, R_OK) != 0) return 0;
  dx_errbuf err = {{0}};
  if (dx_backend_open("cpu", &be, &err) != DX_OK || dx_model_load(path, &model, &err) != DX_OK) {
    fprintf(stderr, "  cannot load %s: %s\n", path, err.msg);
    return 0;
  }
  return 1;
}

static size_t valid(void *u, size_t n) { return dx_model_valid_length(u, n); }
static dx_status fwd(void *u, int w, const float *in, size_t n, float *out, dx_errbuf *err) {
  (void)w;
  return dx_model_forward(u, be, in, n, out, err);
}

static dx_apply_model as_apply(void) {
  const dx_model_info *in = dx_model_get_info(model);
  dx_apply_model m = {in->n_sources, in->audio_channels, in->samplerate, in->segment, 1, valid, fwd, model};
  return m;
}

DX_TEST(one_segment_is_one_forward) {
  if (!setup()) SKIP("htdemucs_full_random not in the reference kit");
  dx_apply_model m = as_apply();
  size_t L = (size_t)(m.segment * m.samplerate + 1e-6), C = 2, S = (size_t)m.n_sources;
  float *mix = malloc(C * L * sizeof *mix), *norm = malloc(C * L * sizeof *norm);
  float *a = malloc(S * C * L * sizeof *a), *b = malloc(S * C * L * sizeof *b);
  for (size_t i = 0; i < L; i++) {
    mix[i] = (float)(0.3 * sin(0.01 * i) + 0.1 * sin(0.37 * i) + 0.02);
    mix[L + i] = (float)(0.25 * sin(0.011 * i + 1) + 0.1 * sin(0.29 * i));
  }
  double s1 = 0, s2 = 0;
  for (size_t i = 0; i < L; i++) s1 += (mix[i] + mix[L + i]) / 2;
  double mean = s1 / L;
  for (size_t i = 0; i < L; i++) s2 += pow((mix[i] + mix[L + i]) / 2 - mean, 2);
  double sd = sqrt(s2 / (L - 1)) + 1e-8;
  for (size_t i = 0; i < C * L; i++) norm[i] = (float)((mix[i] - mean) / sd);
  dx_errbuf err = {{0}};
  CHECK(dx_model_forward(model, be, norm, L, b, &err) == DX_OK);
  for (size_t i = 0; i < S * C * L; i++) b[i] = (float)(b[i] * sd + mean);
  dx_apply_params p = dx_apply_default_params();
  p.shifts = 0;
  p.overlap = 0.0; /* offsets range(0, L, stride): one chunk only when stride = L */
  CHECK_MSG(dx_apply_run(&m, 1, NULL, mix, L, &p, a, &err) == DX_OK, "%s", err.msg);
  double e = dx_test_rel_l2(a, b, S * C * L);
  CHECK_MSG(e < 1e-5, "rel L2 %.3g", e);
  free(mix);
  free(norm);
  free(a);
  free(b);
}

DX_TEST(long_track_is_repeatable) {
  if (!setup()) SKIP("htdemucs_full_random not in the reference kit");
  dx_apply_model m = as_apply();
  size_t L = 20 * 44100, C = 2, S = (size_t)m.n_sources;
  float *mix = malloc(C * L * sizeof *mix), *a = malloc(S * C * L * sizeof *a), *b = malloc(S * C * L * sizeof *b);
  for (size_t i = 0; i < C * L; i++) mix[i] = (float)(0.3 * sin(0.013 * i) * sin(0.00007 * i));
  dx_apply_params p = dx_apply_default_params();
  p.seed = 5;
  CHECK(dx_apply_run(&m, 1, NULL, mix, L, &p, a, NULL) == DX_OK);
  CHECK(dx_apply_run(&m, 1, NULL, mix, L, &p, b, NULL) == DX_OK);
  int finite = 1;
  for (size_t i = 0; i < S * C * L; i++) finite &= isfinite(a[i]);
  CHECK(finite);
  CHECK(memcmp(a, b, S * C * L * sizeof *a) == 0);
  free(mix);
  free(a);
  free(b);
}

DX_TEST(zz_release) {
  dx_model_free(model);
  dx_backend_close(be);
  model = NULL;
}

DX_TEST_MAIN(DX_T(one_segment_is_one_forward), DX_T(long_track_is_repeatable),
             DX_T(zz_release))
