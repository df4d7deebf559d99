/* test_analysis_key.c: key detection on synthesised chord progressions in
 * all 24 keys (I-IV-V-I major, i-iv-V-i minor): at least 22 of 24 exact;
 * names and Camelot codes of every key. CPU backend. */
#include <stdlib.h>
#include <string.h>

#include "dx_analysis.h"
#include "dx_test.h"
#include "test_analysis_synth.h"

DX_TEST(progressions_in_all_keys) {
  dx_backend *be = NULL;
  dx_analyzer *an = NULL;
  dx_errbuf err = {{0}};
  dx_analysis_params p;
  dx_analysis_default_params(&p);
  CHECK(dx_backend_open("cpu", &be, &err) == DX_OK);
  CHECK(dx_analyzer_open(be, &p, &an, &err) == DX_OK);
  if (!an) return;
  int sr = p.feat.sample_rate, exact = 0;
  for (int k = 0; k < 24; k++) {
    size_t n = 0;
    float *y = synth_progression(k % 12, k >= 12, 8.0, 1.0, sr, &n);
    dx_audio au = {.data = y, .channels = 1, .samplerate = sr, .frames = n};
    dx_analysis_result r;
    dx_status st = dx_analyzer_run(an, &au, DX_AF_KEY | DX_AF_CHROMA, NULL, NULL, &r, &err);
    CHECK_MSG(st == DX_OK, "%s", err.msg);
    char want[16];
    dx_key_name(k, want);
    if (r.key_index == k)
      exact++;
    else
      fprintf(stderr, "  %s read as %s (confidence %.2f)\n", want, r.key, r.key_confidence);
    /* the tonic's pitch class is among the strongest chroma bins */
    int above = 0;
    for (int c = 0; c < 12; c++) above += r.chroma[c] > r.chroma[k % 12];
    CHECK_MSG(above <= 2, "%s: tonic chroma is not among the strongest", want);
    dx_analysis_result_free(&r);
    free(y);
  }
  fprintf(stderr, "  %d of 24 keys exact\n", exact);
  CHECK(exact >= 22);
  dx_analyzer_close(an);
  dx_backend_close(be);
}

DX_TEST(key_names_and_camelot) {
  char name[16], cam[4];
  CHECK(!strcmp(dx_key_name(9 + 12, name), "A minor"));
  CHECK(!strcmp(dx_key_camelot(9 + 12, cam), "8A"));
  CHECK(!strcmp(dx_key_name(0, name), "C major"));
  CHECK(!strcmp(dx_key_camelot(0, cam), "8B"));
  CHECK(!strcmp(dx_key_camelot(7, cam), "9B"));  /* G major */
  CHECK(!strcmp(dx_key_camelot(5, cam), "7B"));  /* F major */
  CHECK(!strcmp(dx_key_camelot(6, cam), "2B"));  /* F# major */
  CHECK(!strcmp(dx_key_camelot(4 + 12, cam), "9A")); /* E minor */
  CHECK(!strcmp(dx_key_camelot(0 + 12, cam), "5A")); /* C minor */
  CHECK(!strcmp(dx_key_camelot(8 + 12, cam), "1A")); /* G# minor */
  /* every Camelot code appears exactly once */
  int seen[2][13] = {{0}};
  for (int k = 0; k < 24; k++) {
    dx_key_camelot(k, cam);
    int num = atoi(cam);
    CHECK(num >= 1 && num <= 12);
    if (num >= 1 && num <= 12) seen[cam[strlen(cam) - 1] == 'A'][num]++;
  }
  for (int m = 0; m < 2; m++)
    for (int i = 1; i <= 12; i++) CHECK(seen[m][i] == 1);
  CHECK(dx_key_name(24, name)[0] == 0);
}

DX_TEST(minor_scale_is_minor) {
  /* the D natural-minor scale with a strong tonic triad is D minor */
  static const double scale[12] = {1.0, 0, 0.3, 0.8, 0, 0.3, 0, 0.9, 0.3, 0, 0.3, 0};
  double c[12];
  for (int i = 0; i < 12; i++) c[(i + 2) % 12] = scale[i];
  dx_analysis_result r;
  memset(&r, 0, sizeof r);
  dx_key_detect(c, &r);
  CHECK(r.key_index == 12 + 2);
  CHECK(!strcmp(r.key, "D minor"));
  CHECK(r.key_confidence > 0.5);
}

DX_TEST_MAIN(DX_T(progressions_in_all_keys), DX_T(key_names_and_camelot), DX_T(minor_scale_is_minor))
