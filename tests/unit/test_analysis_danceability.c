/* test_analysis_danceability.c: danceability (engine/analysis/danceability.c).
 *
 * Known answers: white noise has uncorrelated 10 ms deviations, so DFA's
 * alpha is 1/2 and danceability 2; too short a signal and a perfectly even
 * one give 0. The deviations do not depend on how the signal is cut into
 * pieces. Against Essentia's Danceability (tests/oracle/essentia_danceability.py,
 * run with the checkout's .venv, which tools/bootstrap provides; skipped
 * with a message without it) on noise, drum patterns and music-like audio,
 * through the analysis pipeline: within 1e-3 relative. CPU backend. */
#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dx_analysis.h"
#include "dx_test.h"
#include "dx_util.h"
#include "test_analysis_synth.h"

static float *noise_seeded(double seconds, int sr, unsigned seed, size_t *n) {
  *n = (size_t)(seconds * sr);
  float *y = malloc(*n * sizeof *y);
  synth_rng rng = {seed};
  for (size_t i = 0; y && i < *n; i++) y[i] = 0.3f * synth_noise(&rng);
  return y;
}

static float *noise(double seconds, int sr, size_t *n) { return noise_seeded(seconds, sr, 777, n); }

static double dance_of(const float *y, size_t n, int sr, const size_t *pieces, int n_pieces) {
  dx_dance d = {0};
  dx_dance_begin(&d, sr);
  size_t at = 0;
  for (int i = 0; at < n; i++) {
    size_t k = n_pieces ? pieces[i % n_pieces] : n;
    if (k > n - at) k = n - at;
    CHECK(dx_dance_feed(&d, y + at, k) == DX_OK);
    at += k;
  }
  double v = -1;
  CHECK(dx_danceability(d.s, d.n, &v) == DX_OK);
  dx_dance_free(&d);
  return v;
}

/* DFA's alpha of uncorrelated deviations is 1/2: one minute of noise
 * estimates it within a few hundredths, the mean of eight much closer. */
DX_TEST(white_noise_is_two) {
  double alpha = 0;
  for (unsigned seed = 1; seed <= 8; seed++) {
    size_t n;
    float *y = noise_seeded(60, 22050, seed * 7919, &n);
    CHECK(y != NULL);
    if (!y) return;
    double d = dance_of(y, n, 22050, NULL, 0);
    CHECK_MSG(d > 1.6 && d < 2.5, "danceability of white noise %.4f", d);
    alpha += 1 / d / 8;
    free(y);
  }
  fprintf(stderr, "  white noise: mean alpha %.4f, danceability %.4f\n", alpha, 1 / alpha);
  CHECK_MSG(fabs(alpha - 0.5) < 0.03, "mean alpha of white noise %.4f", alpha);
}

DX_TEST(pieces_do_not_matter) {
  size_t n;
  float *y = synth_drums_style(120, 30, 22050, 0, &n);
  CHECK(y != NULL);
  if (!y) return;
  static const size_t cuts[] = {1, 219, 220, 221, 4096, 65536, 7};
  double whole = dance_of(y, n, 22050, NULL, 0);
  for (int i = 0; i < 7; i++) {
    double v = dance_of(y, n, 22050, cuts + i, 7 - i);
    CHECK_MSG(v == whole, "pieces from %zu: %.17g vs %.17g", cuts[i], v, whole);
  }
  free(y);
}

DX_TEST(short_and_even_signals_are_zero) {
  double s[40];
  double v = -1;
  synth_rng rng = {99};
  for (int i = 0; i < 40; i++) s[i] = 0.2 + 0.05 * synth_noise(&rng);
  CHECK(dx_danceability(s, 34, &v) == DX_OK && v == 0);              /* one time scale fits (31 frames) */
  CHECK(dx_danceability(s, 35, &v) == DX_OK && v != 0 && isfinite(v)); /* two: 31 and 34 frames */
  for (int i = 0; i < 40; i++) s[i] = 0.25;
  CHECK(dx_danceability(s, 40, &v) == DX_OK && v == 0); /* no fluctuation */
  CHECK(dx_danceability(s, 0, &v) == DX_OK && v == 0);
}

/* Danceability through the pipeline for each file, and Essentia's. */
DX_TEST(matches_essentia) {
  const char *build = getenv("DEMIX_BUILD"), *src = getenv("DEMIX_SOURCE");
  if (!build || !src) SKIP("DEMIX_BUILD / DEMIX_SOURCE not set (run through ctest)");
  const int sr = 22050;
  enum { N_SIG = 5 };
  static const char *const names[N_SIG] = {"noise", "drums96", "drums128b", "music", "short"};
  char dir[1024], wav[N_SIG][1200], json[1200], cmd[8000], py[1100], script[1100];
  snprintf(dir, sizeof dir, "%s/tests/oracle_dance", build);
  dx_mkdirs(dir);
  dx_errbuf err = {{0}};
  for (int i = 0; i < N_SIG; i++) {
    size_t n = 0;
    float *y = i == 0 ? noise(30, sr, &n)
               : i == 1 ? synth_drums_style(96, 40, sr, 0, &n)
               : i == 2 ? synth_drums_style(128, 25, sr, 1, &n)
               : i == 3 ? synth_music(30, sr, &n)
                        : synth_music(2, sr, &n);
    CHECK(y != NULL);
    if (!y) return;
    snprintf(wav[i], sizeof wav[i], "%s/%s.wav", dir, names[i]);
    CHECK(dx_audio_write(wav[i], y, 1, n, sr, DX_ENC_WAV_FLOAT, &err) == DX_OK);
    free(y);
  }
  snprintf(json, sizeof json, "%s/essentia.json", dir);
  snprintf(py, sizeof py, "%s/.venv/bin/python", src);
  snprintf(script, sizeof script, "%s/tests/oracle/essentia_danceability.py", src);
  if (access(py, X_OK) != 0) SKIP("no %s: run tools/bootstrap to install essentia for the oracle", py);
  int k = snprintf(cmd, sizeof cmd, "'%s' '%s' '%s'", py, script, json);
  for (int i = 0; i < N_SIG; i++) k += snprintf(cmd + k, sizeof cmd - (size_t)k, " '%s'", wav[i]);
  fprintf(stderr, "  running the essentia oracle\n");
  unlink(json);
  if (system(cmd) != 0) SKIP("the essentia oracle failed (is essentia installed in .venv?)");
  json_object *ref = json_object_from_file(json), *files = NULL;
  CHECK(ref && json_object_object_get_ex(ref, "files", &files));
  if (!files) return;

  dx_backend *be = NULL;
  dx_analyzer *an = NULL;
  dx_analysis_params p;
  dx_analysis_default_params(&p);
  CHECK(dx_backend_open("cpu", &be, &err) == DX_OK);
  CHECK(dx_analyzer_open(be, &p, &an, &err) == DX_OK);
  for (int i = 0; an && i < N_SIG; i++) {
    json_object *f = NULL, *d = NULL;
    CHECK(json_object_object_get_ex(files, wav[i], &f) && json_object_object_get_ex(f, "danceability", &d));
    double want = json_object_get_double(d);
    dx_analysis_result r;
    CHECK_MSG(dx_analyzer_run_file(an, wav[i], DX_AF_TEMPO, NULL, NULL, &r, &err) == DX_OK, "%s", err.msg);
    fprintf(stderr, "  %-10s demix %.6f  essentia %.6f\n", names[i], r.danceability, want);
    CHECK_MSG(fabs(r.danceability - want) <= 1e-3 * fabs(want) && want > 0, "%s: %.6f vs essentia %.6f", names[i],
              r.danceability, want);
    dx_analysis_result_free(&r);
  }
  json_object_put(ref);
  dx_analyzer_close(an);
  dx_backend_close(be);
}

DX_TEST_MAIN(DX_T(white_noise_is_two), DX_T(pieces_do_not_matter), DX_T(short_and_even_signals_are_zero),
             DX_T(matches_essentia))
