/* test_analysis_tempo.c: tempo and beats on synthesised drum patterns with
 * known tempo (70..180 BPM): the estimate is within 2 % with no octave
 * errors, and the beats fall on the pattern's beat grid. CPU backend. */
#include <stdlib.h>

#include "dx_analysis.h"
#include "dx_test.h"
#include "test_analysis_synth.h"

static const double tempos[] = {70, 76, 84, 90, 96, 100, 108, 115, 120, 128, 135, 140, 150, 160, 170, 180};

DX_TEST(drum_patterns_tempo) {
  dx_backend *be = NULL;
  dx_analyzer *an = NULL;
  dx_errbuf err = {{0}};
  dx_analysis_params p;
  dx_analysis_default_params(&p);
  CHECK(dx_backend_open("cpu", &be, &err) == DX_OK);
  CHECK(dx_analyzer_open(be, &p, &an, &err) == DX_OK);
  if (!an) return;
  int sr = p.feat.sample_rate;
  for (size_t i = 0; i < 2 * sizeof tempos / sizeof tempos[0]; i++) {
    double bpm = tempos[i / 2];
    int style = (int)(i % 2);
    size_t n = 0;
    float *y = synth_drums_style(bpm, 20.0, sr, style, &n);
    dx_audio au = {.data = y, .channels = 1, .samplerate = sr, .frames = n};
    dx_analysis_result r;
    dx_status st = dx_analyzer_run(an, &au, DX_AF_TEMPO, NULL, NULL, &r, &err);
    CHECK_MSG(st == DX_OK, "%s", err.msg);
    fprintf(stderr, "  style %d %.0f BPM -> %.2f (confidence %.2f, %zu beats)\n", style, bpm, r.tempo, r.tempo_confidence, r.n_beats);
    CHECK_MSG(fabs(r.tempo / bpm - 1) <= 0.02, "tempo %.2f for a %.0f BPM pattern", r.tempo, bpm);
    /* beats lie on the grid 0.05 + k * 60 / bpm (within 2 frames) */
    double period = 60.0 / bpm;
    size_t on = 0;
    for (size_t b = 0; b < r.n_beats; b++) {
      double k = (r.beats[b] - 0.05) / period, off = fabs(k - nearbyint(k)) * period;
      if (off <= 2.0 * p.feat.hop / sr) on++;
    }
    CHECK_MSG(r.n_beats >= (size_t)(20.0 / period * 0.8), "%zu beats at %.0f BPM", r.n_beats, bpm);
    CHECK_MSG(on >= r.n_beats * 9 / 10, "%zu of %zu beats on the grid at %.0f BPM", on, r.n_beats, bpm);
    dx_analysis_result_free(&r);
    free(y);
  }
  dx_analyzer_close(an);
  dx_backend_close(be);
}

DX_TEST(silence_and_noise_have_no_crash) {
  /* an envelope with no onsets gives tempo 0 and no beats */
  float env[400] = {0};
  dx_analysis_params p;
  dx_analysis_default_params(&p);
  dx_analysis_result r = {0};
  CHECK(dx_tempo_analyze(env, env, 400, 22050.0 / 512, 400 * 512 / 22050.0, &p, &r) == DX_OK);
  CHECK(r.tempo == 0 && r.n_beats == 0);
  dx_analysis_result_free(&r);
}

DX_TEST_MAIN(DX_T(drum_patterns_tempo), DX_T(silence_and_noise_have_no_crash))
