/* test_demucs_v3.c: the time-only Demucs v3 graph against the reference
 * kit's demucs_tiny case (forward/output is float32: relative L2 below
 * 1e-4), and the 2x resampler op on its own (lengths, constants kept, a
 * low tone surviving up- then down-sampling). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dx_backend.h"
#include "dx_model.h"
#include "dx_nn_ops.h"
#include "dx_resample.h"
#include "dx_test.h"

DX_TEST(demucs_tiny_forward) {
  size_t nin = 0, nref = 0;
  float *in = dx_test_read_tensor(dx_test_ref_path("demucs/demucs_tiny/forward_input.f16"), &nin);
  float *ref = dx_test_read_tensor(dx_test_ref_path("demucs/demucs_tiny/forward_output.f32"), &nref);
  if (!in || !ref) {
    free(in), free(ref);
    SKIP("reference kit not found");
  }
  CHECK(nin == 2 * 44100 && nref == 4 * nin);
  dx_errbuf err = {{0}};
  dx_model *m = NULL;
  dx_backend *be = NULL;
  dx_status st = dx_model_load(dx_test_ref_path("demucs/demucs_tiny.th"), &m, &err);
  CHECK_MSG(st == DX_OK, "%s: %s", dx_strerror(st), err.msg);
  CHECK(dx_backend_open("cpu", &be, &err) == DX_OK);
  if (m && be) {
    const dx_model_info *info = dx_model_get_info(m);
    CHECK(info->klass == DX_MODEL_DEMUCS && info->n_sources == 4 && info->audio_channels == 2);
    CHECK(info->params == 534554);
    CHECK_NEAR(info->segment, 4.0, 1e-12);
    float *out = malloc(nref * sizeof *out);
    st = dx_model_forward(m, be, in, nin / 2, out, &err);
    CHECK_MSG(st == DX_OK, "%s: %s", dx_strerror(st), err.msg);
    if (st == DX_OK) {
      const double rel = dx_test_rel_l2(out, ref, nref);
      printf("  demucs_tiny forward/output: rel L2 %.3g\n", rel);
      CHECK(rel < 1e-4);
      if (!(rel < 1e-4)) dx_test_dump("demucs_tiny_output", out, nref);
    }
    free(out);
  }
  dx_model_free(m);
  dx_backend_close(be);
  free(in);
  free(ref);
}

DX_TEST(resample_op) {
  dx_errbuf err = {{0}};
  dx_backend *be = NULL;
  CHECK(dx_backend_open("cpu", &be, &err) == DX_OK);
  if (!be) return;
  /* julius' filter sizes for 1->2 and 2->1. */
  CHECK(dx_resample_width(1, 2) == 26);
  CHECK(dx_resample_width(2, 1) == 51);
  float taps[2 * 53];
  CHECK(dx_resample_taps(1, 2, taps, 2 * 53) == 53);
  double s0 = 0, s1 = 0;
  for (int k = 0; k < 53; k++) s0 += taps[k], s1 += taps[53 + k];
  CHECK_NEAR(s0, 1.0, 1e-5);
  CHECK_NEAR(s1, 1.0, 1e-5);

  enum { T = 4000 };
  float *x = malloc(2 * T * sizeof *x), *up = malloc(4 * T * sizeof *up), *dn = malloc(2 * T * sizeof *dn);
  for (int i = 0; i < T; i++) {
    x[i] = 0.75f;                                      /* a constant stays constant */
    x[T + i] = (float)sin(2 * M_PI * 0.01 * i);        /* a low tone survives */
  }
  CHECK(be->nn->resample(be, x, up, 2, T, 1, 2) == DX_OK);
  CHECK(be->nn->resample(be, up, dn, 2, 2 * T, 2, 1) == DX_OK);
  double emax = 0, tone = 0;
  for (int i = 0; i < 2 * T; i++) emax = fmax(emax, fabs(up[i] - 0.75));
  for (int i = 0; i < T; i++) emax = fmax(emax, fabs(dn[i] - 0.75));
  CHECK(emax < 1e-5);
  for (int i = 200; i < T - 200; i++) tone = fmax(tone, fabs(dn[T + i] - x[T + i]));
  CHECK(tone < 1e-3);
  /* odd lengths floor on the way down */
  CHECK(be->nn->resample(be, x, dn, 1, 7, 2, 1) == DX_OK);
  free(x), free(up), free(dn);
  dx_backend_close(be);
}

DX_TEST_MAIN(DX_T(demucs_tiny_forward), DX_T(resample_op))
