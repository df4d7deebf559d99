/* test_analysis_pipeline.c: the analysis pipeline end to end on the CPU:
 * EBU Tech 3341 case 1 (stereo 1 kHz sine at -23 dBFS reads -23.0 LUFS
 * within 0.1 LU), clear errors for unreadable, empty, silent and over-long
 * files, decoding + resampling of a 44.1 kHz stereo file, feature-group
 * parsing and the JSON result's fields, the analyzer kept in the backend's
 * cache slot, and loudness on a helper thread giving the same result. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dx_analysis.h"
#include "dx_test.h"
#include "dx_util.h"
#include "test_analysis_synth.h"

static dx_backend *be;
static dx_analyzer *an;
static char tmpdir[256];

static void setup(void) {
  if (an) return;
  dx_errbuf err = {{0}};
  dx_analysis_params p;
  dx_analysis_default_params(&p);
  p.max_seconds = 60;
  CHECK(dx_backend_open("cpu", &be, &err) == DX_OK);
  CHECK(dx_analyzer_open(be, &p, &an, &err) == DX_OK);
  snprintf(tmpdir, sizeof tmpdir, "/tmp/dx_test_analysis_%d", (int)getpid());
  dx_mkdirs(tmpdir);
}

static const char *tmp(const char *name) {
  static char buf[512];
  snprintf(buf, sizeof buf, "%s/%s", tmpdir, name);
  return buf;
}

DX_TEST(ebu_tech3341_case1) {
  setup();
  if (!an) return;
  int sr = 48000;
  size_t n = (size_t)sr * 20;
  float *y = malloc(2 * n * sizeof *y);
  double amp = pow(10.0, -23.0 / 20.0);
  for (size_t i = 0; i < n; i++) y[i] = y[n + i] = (float)(amp * sin(2 * M_PI * 1000.0 * i / sr));
  dx_audio au = {.data = y, .channels = 2, .samplerate = sr, .frames = n};
  dx_analysis_result r;
  dx_errbuf err = {{0}};
  CHECK(dx_analyzer_run(an, &au, DX_AF_LOUDNESS, NULL, NULL, &r, &err) == DX_OK);
  CHECK_NEAR(r.lufs, -23.0, 0.1);
  CHECK(r.lra >= 0 && r.lra < 0.5);
  CHECK_NEAR(r.true_peak_db, -23.0, 0.2);
  dx_analysis_result_free(&r);
  free(y);
}

DX_TEST(bad_files_have_clear_errors) {
  setup();
  if (!an) return;
  dx_errbuf err = {{0}};
  dx_analysis_result r;
  /* not audio */
  FILE *f = fopen(tmp("junk.wav"), "wb");
  fputs("this is not a wave file at all, just text", f);
  fclose(f);
  dx_status st = dx_analyzer_run_file(an, tmp("junk.wav"), DX_AF_ALL, NULL, NULL, &r, &err);
  CHECK_MSG(st == DX_ERR_UNSUPPORTED || st == DX_ERR_CORRUPT, "junk: %s", dx_status_name(st));
  dx_analysis_result_free(&r);
  /* missing */
  st = dx_analyzer_run_file(an, tmp("missing.wav"), DX_AF_ALL, NULL, NULL, &r, &err);
  CHECK(st != DX_OK);
  dx_analysis_result_free(&r);
  /* silent */
  size_t n = 22050 * 2;
  float *z = calloc(n, sizeof *z);
  CHECK(dx_audio_write(tmp("silent.wav"), z, 1, n, 22050, DX_ENC_WAV_PCM16, &err) == DX_OK);
  st = dx_analyzer_run_file(an, tmp("silent.wav"), DX_AF_ALL, NULL, NULL, &r, &err);
  CHECK_MSG(st == DX_ERR_SILENT, "silent: %s", dx_status_name(st));
  dx_analysis_result_free(&r);
  /* empty (no frames) */
  dx_audio empty = {.data = z, .channels = 1, .samplerate = 22050, .frames = 0};
  CHECK(dx_analyzer_run(an, &empty, DX_AF_ALL, NULL, NULL, &r, &err) == DX_ERR_EMPTY);
  dx_analysis_result_free(&r);
  free(z);
  /* over-long: 61 s of noise against max_seconds = 60 */
  n = 8000 * 61;
  float *y = malloc(n * sizeof *y);
  synth_rng rng = {5};
  for (size_t i = 0; i < n; i++) y[i] = 0.1f * synth_noise(&rng);
  dx_audio lng = {.data = y, .channels = 1, .samplerate = 8000, .frames = n};
  CHECK(dx_analyzer_run(an, &lng, DX_AF_TEMPO, NULL, NULL, &r, &err) == DX_ERR_TOO_LONG);
  dx_analysis_result_free(&r);
  CHECK(dx_audio_write(tmp("long.wav"), y, 1, n, 8000, DX_ENC_WAV_PCM16, &err) == DX_OK);
  CHECK(dx_analyzer_run_file(an, tmp("long.wav"), DX_AF_TEMPO, NULL, NULL, &r, &err) == DX_ERR_TOO_LONG);
  dx_analysis_result_free(&r);
  free(y);
}

static int progress_calls;
static dx_status count_progress(void *ud, int pct) {
  (void)ud;
  CHECK(pct >= 0 && pct <= 100);
  progress_calls++;
  return DX_OK;
}
static dx_status cancel_progress(void *ud, int pct) {
  (void)ud;
  return pct >= 20 ? DX_ERR_CANCELLED : DX_OK;
}

DX_TEST(stereo_44k_file_all_features_and_json) {
  setup();
  if (!an) return;
  /* 12 s of the music mix at 44.1 kHz, made stereo with a quieter right side */
  size_t n = 0;
  float *m = synth_music(12.0, 44100, &n);
  float *st2 = malloc(2 * n * sizeof *st2);
  for (size_t i = 0; i < n; i++) {
    st2[i] = m[i];
    st2[n + i] = 0.5f * m[i];
  }
  dx_errbuf err = {{0}};
  CHECK(dx_audio_write(tmp("music.flac"), st2, 2, n, 44100, DX_ENC_FLAC24, &err) == DX_OK);
  free(m);
  free(st2);
  dx_analysis_result r;
  progress_calls = 0;
  dx_status st = dx_analyzer_run_file(an, tmp("music.flac"), DX_AF_ALL, count_progress, NULL, &r, &err);
  CHECK_MSG(st == DX_OK, "%s", err.msg);
  if (st != DX_OK) return;
  CHECK(progress_calls >= 3);
  CHECK(r.sample_rate == 44100 && r.channels == 2 && r.analysis_rate == 22050);
  CHECK_NEAR(r.duration, 12.0, 1e-6);
  CHECK(r.frames == dx_feat_frame_count(12 * 22050, 512));
  CHECK_NEAR(r.tempo, 120.0, 2.4);
  CHECK(r.n_beats >= 18);
  CHECK(!strcmp(r.key, "A minor") && !strcmp(r.camelot, "8A"));
  CHECK(r.energy > 0 && r.energy < 1);
  CHECK(r.lufs < -5 && r.lufs > -40);
  CHECK(r.centroid.mean > 100 && r.rolloff.mean > r.centroid.mean);
  json_object *o = dx_analysis_result_json(&r);
  static const char *const keys[] = {"tempo", "tempo_confidence", "beats", "onset_rate", "danceability", "key", "camelot",
                                     "key_confidence", "energy", "rms", "loudness", "spectral_centroid",
                                     "spectral_bandwidth", "spectral_rolloff", "spectral_flatness",
                                     "zero_crossing_rate", "mfcc", "chroma", "features", "duration",
                                     "sample_rate", "channels"};
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) CHECK_MSG(json_object_object_get_ex(o, keys[i], NULL), "%s", keys[i]);
  json_object *feats = NULL, *mf = NULL;
  CHECK(json_object_object_get_ex(o, "features", &feats) && json_object_object_get_ex(feats, "mfcc", &mf));
  CHECK(json_object_array_length(mf) == 2 && json_object_array_length(json_object_array_get_idx(mf, 0)) == 20);
  json_object_put(o);
  dx_analysis_result_free(&r);

  /* a subset gives only its fields */
  CHECK(dx_analyzer_run_file(an, tmp("music.flac"), DX_AF_KEY, NULL, NULL, &r, &err) == DX_OK);
  o = dx_analysis_result_json(&r);
  CHECK(json_object_object_get_ex(o, "key", NULL));
  CHECK(!json_object_object_get_ex(o, "tempo", NULL));
  CHECK(!json_object_object_get_ex(o, "mfcc", NULL));
  json_object_put(o);
  dx_analysis_result_free(&r);

  /* a cancelling progress callback stops the run with its status */
  CHECK(dx_analyzer_run_file(an, tmp("music.flac"), DX_AF_ALL, cancel_progress, NULL, &r, &err) == DX_ERR_CANCELLED);
  dx_analysis_result_free(&r);
}

DX_TEST(feature_names) {
  unsigned m = 0;
  dx_errbuf err = {{0}};
  CHECK(dx_analysis_features_parse("tempo,key", &m, &err) == DX_OK && m == (DX_AF_TEMPO | DX_AF_KEY));
  CHECK(dx_analysis_features_parse("all", &m, &err) == DX_OK && m == DX_AF_ALL);
  CHECK(dx_analysis_features_parse("tempo,bogus", &m, &err) == DX_ERR_INVALID);
  CHECK(strstr(err.msg, "bogus") != NULL);
  CHECK(dx_analysis_features_parse("", &m, &err) == DX_ERR_INVALID);
  for (unsigned b = 1; b < DX_AF_ALL; b <<= 1) {
    unsigned x = 0;
    CHECK(dx_analysis_feature_name(b) && dx_analysis_feature_add(dx_analysis_feature_name(b), &x, &err) == DX_OK && x == b);
  }
}

DX_TEST(cached_analyzer_and_loudness_thread) {
  dx_errbuf err = {{0}};
  dx_backend *b = NULL;
  CHECK(dx_backend_open("cpu", &b, &err) == DX_OK);
  if (!b) return;
  dx_analysis_params p;
  dx_analysis_default_params(&p);
  dx_analyzer *a1 = NULL, *a2 = NULL, *a3 = NULL;
  CHECK(dx_analyzer_cached(b, &p, &a1, &err) == DX_OK && a1 && b->feat_state == a1 && b->feat_state_free);
  CHECK(dx_analyzer_cached(b, &p, &a2, &err) == DX_OK && a2 == a1);
  /* the same track with the loudness on a helper thread gives the same result */
  size_t n = 0;
  float *m = synth_music(6.0, 44100, &n);
  float *y = malloc(2 * n * sizeof *y);
  for (size_t i = 0; i < n; i++) y[i] = m[i], y[n + i] = 0.7f * m[i];
  dx_audio au = {.data = y, .channels = 2, .samplerate = 44100, .frames = n};
  dx_analysis_result r1, r2;
  CHECK(dx_analyzer_run(a1, &au, DX_AF_ALL, NULL, NULL, &r1, &err) == DX_OK);
  p.threads = 2;
  CHECK(dx_analyzer_cached(b, &p, &a3, &err) == DX_OK && a3 && b->feat_state == a3);
  CHECK(dx_analyzer_run(a3, &au, DX_AF_ALL, NULL, NULL, &r2, &err) == DX_OK);
  CHECK(r1.lufs == r2.lufs && r1.lra == r2.lra && r1.true_peak_db == r2.true_peak_db);
  CHECK(r1.tempo == r2.tempo && r1.key_index == r2.key_index && r1.centroid.mean == r2.centroid.mean);
  CHECK(r1.mfcc[3].mean == r2.mfcc[3].mean && r1.chroma[5] == r2.chroma[5]);
  CHECK(isfinite(r2.lufs) && r2.t_loudness > 0);
  /* a run stopped while the helper thread measures returns its status */
  dx_analysis_result_free(&r2);
  CHECK(dx_analyzer_run(a3, &au, DX_AF_ALL, cancel_progress, NULL, &r2, &err) == DX_ERR_CANCELLED);
  dx_analysis_result_free(&r1);
  dx_analysis_result_free(&r2);
  /* closing the backend frees the cached analyzer; a reopened one starts empty */
  dx_backend_close(b);
  CHECK(dx_backend_open("cpu", &b, &err) == DX_OK && b && !b->feat_state);
  CHECK(dx_analyzer_cached(b, &p, &a1, &err) == DX_OK && a1);
  CHECK(dx_analyzer_run(a1, &au, DX_AF_LOUDNESS | DX_AF_KEY, NULL, NULL, &r1, &err) == DX_OK);
  dx_analysis_result_free(&r1);
  dx_backend_close(b);
  free(m);
  free(y);
}

DX_TEST(cleanup) {
  dx_analyzer_close(an);
  dx_backend_close(be);
  dx_rmtree(tmpdir);
}

DX_TEST_MAIN(DX_T(ebu_tech3341_case1), DX_T(bad_files_have_clear_errors), DX_T(stereo_44k_file_all_features_and_json),
             DX_T(feature_names), DX_T(cached_analyzer_and_loudness_thread), DX_T(cleanup))
