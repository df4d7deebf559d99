/* test_hpss.c: harmonic/percussive separation (engine/models/hpss.c): the
 * stems add back to the mix, a steady tone lands in the harmonic stem and
 * clicks in the percussive one, the STFT round trip is transparent where the
 * masks are flat, and short or odd inputs work. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dx_hpss.h"
#include "dx_test.h"

#define SR 44100

static double energy(const float *x, size_t n) {
  double e = 0;
  for (size_t i = 0; i < n; i++) e += (double)x[i] * x[i];
  return e;
}

DX_TEST(stems_sum_to_mix) {
  size_t L = 3 * SR + 123;
  int C = 2;
  float *mix = malloc((size_t)C * L * sizeof *mix), *out = malloc(2 * (size_t)C * L * sizeof *out);
  uint32_t st = 7;
  for (size_t i = 0; i < (size_t)C * L; i++) {
    st = st * 1664525u + 1013904223u;
    mix[i] = (float)(0.4 * sin(0.03 * (double)(i % L)) + ((st >> 8) / 16777216.0 - 0.5) * 0.3);
  }
  dx_hpss_params p = dx_hpss_default_params();
  dx_errbuf err = {{0}};
  CHECK(dx_hpss_run(mix, C, L, &p, out, &err) == DX_OK);
  double worst = 0;
  for (size_t i = 0; i < (size_t)C * L; i++) {
    double d = fabs((double)out[i] + out[(size_t)C * L + i] - mix[i]);
    if (d > worst) worst = d;
  }
  CHECK_MSG(worst <= 1e-6, "max |h + p - mix| = %.3g", worst);
  free(mix);
  free(out);
}

DX_TEST(tone_is_harmonic_clicks_are_percussive) {
  size_t L = 2 * SR;
  float *tone = malloc(L * sizeof *tone), *clicks = calloc(L, sizeof *clicks), *mix = malloc(L * sizeof *mix);
  float *out = malloc(2 * L * sizeof *out);
  for (size_t i = 0; i < L; i++) tone[i] = (float)(0.3 * sin(2 * M_PI * 440.0 * i / SR));
  for (size_t k = 5000; k + 8 < L; k += 11025)
    for (int j = 0; j < 8; j++) clicks[k + j] = (float)(0.8 * (j % 2 ? -1 : 1) * (1.0 - j / 8.0));
  for (size_t i = 0; i < L; i++) mix[i] = tone[i] + clicks[i];
  dx_hpss_params p = dx_hpss_default_params();
  CHECK(dx_hpss_run(mix, 1, L, &p, out, NULL) == DX_OK);
  const float *h = out, *q = out + L;
  double eh = dx_test_rel_l2(h, tone, L), ep = dx_test_rel_l2(q, clicks, L);
  CHECK_MSG(eh < 0.2, "harmonic vs tone: rel L2 %.3f", eh);
  CHECK_MSG(ep < 0.6, "percussive vs clicks: rel L2 %.3f", ep);
  /* most of each stem's energy is where it belongs */
  CHECK(energy(h, L) > 0.8 * energy(tone, L));
  double e_click_region = 0;
  for (size_t k = 5000; k + 8 < L; k += 11025)
    for (size_t j = k - 512; j < k + 512; j++) e_click_region += (double)q[j] * q[j];
  CHECK(e_click_region > 0.5 * energy(q, L));
  free(tone);
  free(clicks);
  free(mix);
  free(out);
}

DX_TEST(short_and_odd_inputs) {
  dx_hpss_params p = dx_hpss_default_params();
  size_t lens[] = {1, 100, 2047, 2049, 9000};
  for (size_t t = 0; t < sizeof lens / sizeof lens[0]; t++) {
    size_t L = lens[t];
    float *mix = malloc(3 * L * sizeof *mix), *out = malloc(6 * L * sizeof *out);
    for (size_t i = 0; i < 3 * L; i++) mix[i] = (float)sin(0.1 * i) * 0.5f;
    CHECK(dx_hpss_run(mix, 3, L, &p, out, NULL) == DX_OK);
    int finite = 1;
    double worst = 0;
    for (size_t i = 0; i < 3 * L; i++) {
      finite &= isfinite(out[i]) && isfinite(out[3 * L + i]);
      worst = fmax(worst, fabs((double)out[i] + out[3 * L + i] - mix[i]));
    }
    CHECK_MSG(finite && worst <= 1e-6, "length %zu: worst %.3g", L, worst);
    free(mix);
    free(out);
  }
  float x[4] = {0}, y[8];
  CHECK(dx_hpss_run(x, 1, 0, &p, y, NULL) == DX_ERR_EMPTY);
  p.win_harm = 30;
  CHECK(dx_hpss_run(x, 1, 4, &p, y, NULL) == DX_ERR_INVALID);
}

static int stop_at_two(void *user, size_t done, size_t total) {
  (void)user;
  (void)total;
  return done >= 2;
}

DX_TEST(cancel_through_progress) {
  size_t L = 10 * SR;
  float *mix = calloc(L, sizeof *mix), *out = malloc(2 * L * sizeof *out);
  dx_hpss_params p = dx_hpss_default_params();
  p.progress = stop_at_two;
  CHECK(dx_hpss_run(mix, 1, L, &p, out, NULL) == DX_ERR_CANCELLED);
  free(mix);
  free(out);
}

DX_TEST_MAIN(DX_T(stems_sum_to_mix), DX_T(tone_is_harmonic_clicks_are_percussive), DX_T(short_and_odd_inputs),
             DX_T(cancel_through_progress))
