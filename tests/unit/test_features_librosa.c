/* test_features_librosa.c: the CPU pipeline against librosa 0.11 on
 * music-like audio (a chord progression with drums and a little noise,
 * synthesised here): MFCC, chroma, spectral centroid, bandwidth, rolloff,
 * RMS (means and deviations over frames), flatness and zero-crossing rate
 * within 1e-3 relative error, spectral contrast within 1e-2 (its valleys sit
 * at the FFT's rounding floor in quiet bands, where float32 and librosa's
 * float64 transform differ).
 *
 * The reference values come from tests/oracle/librosa_features.py, run here
 * with the checkout's .venv (tools/bootstrap installs librosa there) when
 * $DEMIX_BUILD/tests/oracle_music_<hash>.json is not there yet; without
 * python or librosa the comparison is skipped with a message saying so. */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dx_analysis.h"
#include "dx_test.h"
#include "dx_util.h"
#include "test_analysis_synth.h"

static double rel_err(double a, double b) { return fabs(a - b) / fmax(fabs(b), 1e-12); }

static double vec_rel(const double *a, json_object *b, int n) {
  double num = 0, den = 0;
  for (int i = 0; i < n; i++) {
    double r = json_object_get_double(json_object_array_get_idx(b, i));
    num += (a[i] - r) * (a[i] - r);
    den += r * r;
  }
  return sqrt(num / fmax(den, 1e-30));
}

static json_object *field(json_object *o, const char *k, const char *sub) {
  json_object *v = NULL, *w = NULL;
  if (!json_object_object_get_ex(o, k, &v)) return NULL;
  if (!sub) return v;
  return json_object_object_get_ex(v, sub, &w) ? w : NULL;
}

static void check_stat(json_object *ref, const char *name, dx_stat s, double tol) {
  double m = json_object_get_double(field(ref, name, "mean")), sd = json_object_get_double(field(ref, name, "std"));
  CHECK_MSG(rel_err(s.mean, m) <= tol, "%s mean %.7g vs librosa %.7g (rel %.2e)", name, s.mean, m, rel_err(s.mean, m));
  CHECK_MSG(rel_err(s.std, sd) <= tol, "%s std %.7g vs librosa %.7g (rel %.2e)", name, s.std, sd, rel_err(s.std, sd));
}

DX_TEST(pipeline_matches_librosa) {
  const char *build = getenv("DEMIX_BUILD"), *src = getenv("DEMIX_SOURCE");
  if (!build || !src) SKIP("DEMIX_BUILD / DEMIX_SOURCE not set (run through ctest)");
  int sr = 22050;
  size_t n = 0;
  float *y = synth_music(15.0, sr, &n);
  CHECK(y != NULL);
  if (!y) return;
  char dir[1024], wav[1200], json[1200], cmd[6000], py[1100], script[1100];
  snprintf(dir, sizeof dir, "%s/tests", build);
  dx_mkdirs(dir);
  char hash[65];
  dx_sha256_hex(y, n * sizeof(float), hash);
  hash[12] = 0;
  snprintf(wav, sizeof wav, "%s/oracle_music_%s.wav", dir, hash);
  snprintf(json, sizeof json, "%s/oracle_music_%s.json", dir, hash);
  dx_errbuf err = {{0}};
  CHECK(dx_audio_write(wav, y, 1, n, sr, DX_ENC_WAV_FLOAT, &err) == DX_OK);
  free(y);
  struct stat sb;
  if (stat(json, &sb) != 0) {
    snprintf(py, sizeof py, "%s/.venv/bin/python", src);
    snprintf(script, sizeof script, "%s/tests/oracle/librosa_features.py", src);
    if (access(py, X_OK) != 0) SKIP("no %s: run tools/bootstrap to install librosa for the oracle", py);
    snprintf(cmd, sizeof cmd, "'%s' '%s' '%s' '%s'", py, script, wav, json);
    fprintf(stderr, "  running the librosa oracle: %s\n", cmd);
    if (system(cmd) != 0 || stat(json, &sb) != 0) SKIP("the librosa oracle failed (is librosa installed in .venv?)");
  }
  json_object *ref = json_object_from_file(json);
  CHECK(ref != NULL);
  if (!ref) return;

  dx_backend *be = NULL;
  dx_analyzer *an = NULL;
  dx_analysis_params p;
  dx_analysis_default_params(&p);
  CHECK(dx_backend_open("cpu", &be, &err) == DX_OK);
  CHECK(dx_analyzer_open(be, &p, &an, &err) == DX_OK);
  dx_analysis_result r;
  dx_status st = an ? dx_analyzer_run_file(an, wav, DX_AF_ALL, NULL, NULL, &r, &err) : DX_ERR_INVALID;
  CHECK_MSG(st == DX_OK, "%s", err.msg);
  if (st == DX_OK) {
    CHECK((long long)r.frames == json_object_get_int64(field(ref, "frames", NULL)));
    double m[DX_MAX_MFCC], s[DX_MAX_MFCC];
    for (int i = 0; i < r.n_mfcc; i++) {
      m[i] = r.mfcc[i].mean;
      s[i] = r.mfcc[i].std;
    }
    double e;
    CHECK_MSG((e = vec_rel(m, field(ref, "mfcc", "mean"), 20)) <= 1e-3, "mfcc means rel %.2e", e);
    CHECK_MSG((e = vec_rel(s, field(ref, "mfcc", "std"), 20)) <= 1e-3, "mfcc stds rel %.2e", e);
    CHECK_MSG((e = vec_rel(r.chroma, field(ref, "chroma", "mean"), 12)) <= 1e-3, "chroma means rel %.2e", e);
    check_stat(ref, "spectral_centroid", r.centroid, 1e-3);
    check_stat(ref, "spectral_bandwidth", r.bandwidth, 1e-3);
    check_stat(ref, "spectral_rolloff", r.rolloff, 1e-3);
    check_stat(ref, "rms", r.rms, 1e-3);
    check_stat(ref, "zero_crossing_rate", r.zcr, 1e-3);
    check_stat(ref, "spectral_flatness", r.flatness, 1e-3);
    double cm[DX_CONTRAST_N];
    for (int i = 0; i < DX_CONTRAST_N; i++) cm[i] = r.contrast[i].mean;
    CHECK_MSG((e = vec_rel(cm, field(ref, "spectral_contrast", "mean"), DX_CONTRAST_N)) <= 1e-2, "contrast rel %.2e",
              e);
    fprintf(stderr, "  tempo %.2f (librosa %.2f), key %s\n", r.tempo,
            json_object_get_double(field(ref, "librosa_tempo", NULL)), r.key);
    CHECK(fabs(r.tempo - 120.0) < 2.4);
    CHECK(!strcmp(r.key, "A minor"));
  }
  dx_analysis_result_free(&r);
  json_object_put(ref);
  dx_analyzer_close(an);
  dx_backend_close(be);
}

DX_TEST_MAIN(DX_T(pipeline_matches_librosa))
