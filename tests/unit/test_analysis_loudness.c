/* test_analysis_loudness.c: dx_loudness_measure against the EBU test
 * cases with known answers, synthesised here as the documents describe
 * them (stereo 1 kHz sines at 48 kHz): Tech 3341 cases 1-5 (integrated
 * loudness within 0.1 LU), Tech 3342 cases 1-4 (loudness range within
 * 1 LU) and Tech 3341 cases 15-19 (true peak of sines at fs/4, fs/6, fs/8
 * with awkward phases, -0.4/+0.2 dB; faded in and out); the same integrated loudness as
 * libebur128 on music-like audio at 44.1 kHz (also where the track's two
 * halves meet); channel weights (LFE left
 * out, surrounds x1.41); the pruned true peak equal to the exhaustive
 * one on several signals; and the streaming measurement equal to the
 * whole-buffer one whatever the block size. */
#include <ebur128.h>
#include <math.h>
#include <stdlib.h>

#include "dx_analysis.h"
#include "dx_test.h"
#include "test_analysis_synth.h"

#define SR 48000

/* Stereo sine of freq Hz made of segments {seconds, dBFS} one after another. */
static float *sine_segments(const double (*seg)[2], int nseg, double freq, double phase, size_t *n_out) {
  size_t n = 0;
  for (int s = 0; s < nseg; s++) n += (size_t)llround(seg[s][0] * SR);
  float *y = malloc(2 * n * sizeof *y);
  size_t i = 0;
  for (int s = 0; s < nseg; s++) {
    double amp = pow(10.0, seg[s][1] / 20.0);
    size_t m = (size_t)llround(seg[s][0] * SR);
    for (size_t j = 0; j < m; j++, i++) y[i] = y[n + i] = (float)(amp * sin(2 * M_PI * freq * i / SR + phase));
  }
  *n_out = n;
  return y;
}

static void measure(const double (*seg)[2], int nseg, double *lufs, double *lra, double *tp) {
  size_t n;
  float *y = sine_segments(seg, nseg, 1000.0, 0, &n);
  dx_audio a = {.data = y, .channels = 2, .samplerate = SR, .frames = n};
  dx_errbuf err = {{0}};
  CHECK(dx_loudness_measure(&a, lufs, lra, tp, &err) == DX_OK);
  free(y);
}

DX_TEST(tech3341_integrated_cases_1_to_5) {
  static const double c1[][2] = {{20, -23}}, c2[][2] = {{20, -33}}, c3[][2] = {{10, -36}, {60, -23}, {10, -36}},
                      c4[][2] = {{10, -72}, {10, -36}, {60, -23}, {10, -36}, {10, -72}},
                      c5[][2] = {{20, -26}, {20.1, -20}, {20, -26}};
  double l, r, tp;
  measure(c1, 1, &l, &r, &tp);
  CHECK_NEAR(l, -23.0, 0.1);
  CHECK_NEAR(tp, -23.0, 0.1);
  measure(c2, 1, &l, &r, &tp);
  CHECK_NEAR(l, -33.0, 0.1);
  measure(c3, 3, &l, &r, &tp);
  CHECK_NEAR(l, -23.0, 0.1);
  measure(c4, 5, &l, &r, &tp);
  CHECK_NEAR(l, -23.0, 0.1);
  measure(c5, 3, &l, &r, &tp);
  CHECK_NEAR(l, -23.0, 0.1);
}

DX_TEST(tech3342_range_cases_1_to_4) {
  static const double c1[][2] = {{20, -20}, {20, -30}}, c2[][2] = {{20, -20}, {20, -15}},
                      c3[][2] = {{20, -40}, {20, -20}}, c4[][2] = {{20, -50}, {20, -35}, {20, -20}, {20, -35}, {20, -50}};
  double l, r, tp;
  measure(c1, 2, &l, &r, &tp);
  CHECK_NEAR(r, 10.0, 1.0);
  measure(c2, 2, &l, &r, &tp);
  CHECK_NEAR(r, 5.0, 1.0);
  measure(c3, 2, &l, &r, &tp);
  CHECK_NEAR(r, 20.0, 1.0);
  measure(c4, 5, &l, &r, &tp);
  CHECK_NEAR(r, 15.0, 1.0);
}

DX_TEST(tech3341_true_peak_cases_15_to_19) {
  /* {frequency as a fraction of fs, phase in degrees, true peak dBTP} */
  static const double c[][3] = {{0.25, 0, -6}, {0.25, 45, -6}, {1.0 / 6, 60, -6}, {0.125, 67.5, -6}, {0.25, 45, 3}};
  for (int i = 0; i < 5; i++) {
    double seg[1][2] = {{5, c[i][2]}};
    size_t n;
    float *y = sine_segments(seg, 1, c[i][0] * SR, c[i][1] * M_PI / 180, &n);
    /* 10 ms fades: a sine that starts or stops abruptly overshoots between
     * the zeros outside the file and its first or last sample */
    for (size_t j = 0; j < SR / 100; j++) {
      float g = (float)(0.5 - 0.5 * cos(M_PI * j / (SR / 100)));
      y[j] *= g, y[n + j] *= g, y[n - 1 - j] *= g, y[2 * n - 1 - j] *= g;
    }
    dx_audio a = {.data = y, .channels = 2, .samplerate = SR, .frames = n};
    double l, r, tp;
    dx_errbuf err = {{0}};
    CHECK(dx_loudness_measure(&a, &l, &r, &tp, &err) == DX_OK);
    CHECK_MSG(tp >= c[i][2] - 0.4 && tp <= c[i][2] + 0.2, "case %d: %.3f dBTP, want %.1f", 15 + i, tp, c[i][2]);
    free(y);
  }
}

/* libebur128's integrated loudness of planar audio (NAN when it fails). */
static double ebur128_integrated(const dx_audio *a) {
  size_t n = a->frames, ch = (size_t)a->channels;
  float *il = malloc(ch * n * sizeof *il);
  double ref = NAN;
  ebur128_state *s = il ? ebur128_init((unsigned)ch, (unsigned long)a->samplerate, EBUR128_MODE_I) : NULL;
  if (s) {
    for (size_t i = 0; i < n; i++)
      for (size_t c = 0; c < ch; c++) il[i * ch + c] = a->data[c * n + i];
    if (ebur128_add_frames_float(s, il, n) != EBUR128_SUCCESS || ebur128_loudness_global(s, &ref) != EBUR128_SUCCESS)
      ref = NAN;
    ebur128_destroy(&s);
  }
  free(il);
  return ref;
}

DX_TEST(integrated_matches_libebur128_at_44k) {
  int sr = 44100;
  size_t n = 0;
  float *m = synth_music(30.0, sr, &n);
  float *y = malloc(2 * n * sizeof *y);
  for (size_t i = 0; i < n; i++) {
    y[i] = 0.7f * m[i];
    y[n + i] = 0.4f * m[i] + 0.05f * (i % 97) / 97.0f;
  }
  dx_audio a = {.data = y, .channels = 2, .samplerate = sr, .frames = n};
  double l, r, tp, ref = ebur128_integrated(&a);
  dx_errbuf err = {{0}};
  CHECK(dx_loudness_measure(&a, &l, &r, &tp, &err) == DX_OK);
  CHECK(!isnan(ref));
  CHECK_MSG(fabs(l - ref) < 0.01, "%.4f LUFS vs libebur128 %.4f", l, ref);
  CHECK(r >= 0 && r < 30);
  free(m);
  free(y);
}

/* The K-weighting runs the two halves of a track side by side, the second
 * starting from a state found by filtering the second before it. A loud
 * 25 Hz tone that starts just before the split (the high-pass' slow
 * poles ring for tens of milliseconds) and a track too short for a full
 * second of run-in must both read what libebur128's single pass reads. */
DX_TEST(halves_match_one_pass) {
  int sr = 44100;
  double secs[2] = {30.0, 1.5};
  for (int c = 0; c < 2; c++) {
    size_t n = 0;
    float *m = synth_music(secs[c], sr, &n);
    float *y = malloc(2 * n * sizeof *y);
    size_t split = (n / (sr / 10)) / 2 * (sr / 10);
    for (size_t i = 0; i < n; i++) {
      float lf = i + sr / 50 >= split ? 0.5f * (float)sin(2 * M_PI * 25.0 * i / sr) : 0.0f;
      y[i] = 0.3f * m[i] + lf;
      y[n + i] = 0.2f * m[i] - lf;
    }
    dx_audio a = {.data = y, .channels = 2, .samplerate = sr, .frames = n};
    double l, r, tp, ref = ebur128_integrated(&a);
    dx_errbuf err = {{0}};
    CHECK(dx_loudness_measure(&a, &l, &r, &tp, &err) == DX_OK);
    CHECK(!isnan(ref));
    CHECK_MSG(fabs(l - ref) < 1e-3, "%.0f s: %.6f LUFS vs libebur128 %.6f", secs[c], l, ref);
    free(m);
    free(y);
  }
}

DX_TEST(channel_weights) {
  /* 6 channels: a loud LFE (channel 3) is left out; equal sines in the
   * surrounds (4, 5) weigh 1.41 each against 1 for L */
  size_t n = SR * 5;
  float *y = calloc(6 * n, sizeof *y);
  for (size_t i = 0; i < n; i++) {
    float v = (float)(0.1 * sin(2 * M_PI * 1000.0 * i / SR));
    y[i] = v;                 /* L */
    y[3 * n + i] = 8 * v;     /* LFE */
  }
  dx_audio a = {.data = y, .channels = 6, .samplerate = SR, .frames = n};
  double l_left, l_sur, r, tp;
  dx_errbuf err = {{0}};
  CHECK(dx_loudness_measure(&a, &l_left, &r, &tp, &err) == DX_OK);
  for (size_t i = 0; i < n; i++) {
    y[4 * n + i] = y[i];
    y[i] = 0;
  }
  CHECK(dx_loudness_measure(&a, &l_sur, &r, &tp, &err) == DX_OK);
  CHECK_NEAR(l_sur - l_left, 10 * log10(1.41), 0.01);
  free(y);
}

DX_TEST(pruned_true_peak_equals_exhaustive) {
  size_t n = 0;
  float *m = synth_music(8.0, 44100, &n);
  synth_rng rng = {99};
  float *noise = malloc(n * sizeof *noise), *clip = malloc(n * sizeof *clip), *isp = malloc(n * sizeof *isp);
  for (size_t i = 0; i < n; i++) {
    noise[i] = 0.3f * synth_noise(&rng) * (float)(1 + sin(i * 1e-4));
    float v = (float)(1.6 * sin(2 * M_PI * 997.0 * i / 44100));
    clip[i] = v > 0.9f ? 0.9f : v < -0.9f ? -0.9f : v;
    isp[i] = (float)(0.5 * sin(2 * M_PI * 11025.0 * i / 44100 + M_PI / 4)) * (i > n / 2 ? 1.0f : 0.2f);
  }
  const float *sig[] = {m, noise, clip, isp};
  for (int s = 0; s < 4; s++) {
    float a = dx_true_peak(sig[s], n, 0, 0), b = dx_true_peak(sig[s], n, 0, 1);
    CHECK_MSG(a == b, "signal %d: pruned %.9g vs exhaustive %.9g", s, a, b);
    CHECK(a > 0);
    /* a floor above everything comes back unchanged */
    CHECK(dx_true_peak(sig[s], n, 10.0f, 0) == 10.0f);
  }
  /* an inter-sample peak is found above the samples */
  CHECK(dx_true_peak(isp, n, 0, 0) > 0.5f * 0.75f);
  free(m);
  free(noise);
  free(clip);
  free(isp);
}

/* dx_loudness_stream_* fed in blocks of bs frames (bs 0: sizes that vary
 * from 1 to 5,000) against dx_loudness_measure on the same planar audio. */
static void check_stream(const char *what, const dx_audio *a, size_t bs) {
  double l0, r0, t0, l1 = 0, r1 = 0, t1 = 0;
  dx_errbuf err = {{0}};
  CHECK(dx_loudness_measure(a, &l0, &r0, &t0, &err) == DX_OK);
  size_t ch = (size_t)a->channels, n = a->frames;
  float *il = malloc(ch * n * sizeof *il);
  for (size_t i = 0; i < n; i++)
    for (size_t c = 0; c < ch; c++) il[i * ch + c] = a->data[c * n + i];
  dx_loudness_stream *s = NULL;
  CHECK(dx_loudness_stream_begin(a->channels, a->samplerate, &s, &err) == DX_OK);
  synth_rng rng = {7};
  for (size_t i = 0; s && i < n;) {
    size_t k = bs ? bs : 1 + (size_t)((synth_noise(&rng) + 1.0f) * 2499.5f);
    if (k > n - i) k = n - i;
    CHECK(dx_loudness_stream_add(s, il + i * ch, k, &err) == DX_OK);
    i += k;
  }
  CHECK(s && dx_loudness_stream_end(s, &l1, &r1, &t1, &err) == DX_OK);
  CHECK_MSG(fabs(l1 - l0) <= 1e-6 || l1 == l0, "%s, blocks of %zu: %.9f LUFS streamed vs %.9f", what, bs, l1, l0);
  CHECK_MSG(fabs(r1 - r0) <= 1e-6 || r1 == r0, "%s, blocks of %zu: range %.9f LU streamed vs %.9f", what, bs, r1, r0);
  CHECK_MSG(t1 == t0, "%s, blocks of %zu: true peak %.9f dBTP streamed vs %.9f", what, bs, t1, t0);
  free(il);
}

DX_TEST(stream_equals_whole_buffer) {
  /* lengths that are no multiple of a block or of 100 ms */
  size_t n = 0;
  float *m = synth_music(20.37, 44100, &n);
  float *st = malloc(2 * n * sizeof *st);
  for (size_t i = 0; i < n; i++) { /* louder towards the end: a range of a few LU */
    float g = (float)(0.3 + 0.5 * i / n);
    st[i] = g * m[i];
    st[n + i] = 0.6f * g * m[i] + 0.02f * (float)sin(0.003 * i);
  }
  dx_audio stereo = {.data = st, .channels = 2, .samplerate = 44100, .frames = n};
  size_t nm = (size_t)(7.31 * SR);
  float *mono = malloc(nm * sizeof *mono);
  synth_rng rng = {3};
  for (size_t i = 0; i < nm; i++) mono[i] = 0.2f * synth_noise(&rng) * (i < nm / 3 ? 0.1f : 1.0f);
  dx_audio mo = {.data = mono, .channels = 1, .samplerate = SR, .frames = nm};
  /* 5.1: a loud LFE (left out), surrounds weighted 1.41 */
  size_t n6 = (size_t)(6.05 * SR);
  float *s6 = malloc(6 * n6 * sizeof *s6);
  for (size_t i = 0; i < n6; i++)
    for (int c = 0; c < 6; c++)
      s6[c * n6 + i] = (c == 3 ? 0.8f : 0.1f + 0.03f * c) * (float)sin(2 * M_PI * (220.0 * (c + 1)) * i / SR) +
                       0.05f * synth_noise(&rng);
  dx_audio surround = {.data = s6, .channels = 6, .samplerate = SR, .frames = n6};
  /* fs/4 at 45 degrees: the samples reach 0.71 of the true peak, which lies between them */
  size_t ns = (size_t)(5.013 * SR);
  float *sine = malloc(2 * ns * sizeof *sine);
  for (size_t i = 0; i < ns; i++) {
    float g = i < SR / 100 ? (float)(0.5 - 0.5 * cos(M_PI * i / (SR / 100))) : 1.0f;
    sine[i] = sine[ns + i] = g * 0.8f * (float)sin(2 * M_PI * 0.25 * i + M_PI / 4);
  }
  dx_audio isp = {.data = sine, .channels = 2, .samplerate = SR, .frames = ns};
  static const size_t bs[] = {1000, 4096, 65536, 0};
  for (int b = 0; b < 4; b++) {
    check_stream("stereo music", &stereo, bs[b]);
    check_stream("mono noise", &mo, bs[b]);
    check_stream("5.1", &surround, bs[b]);
    check_stream("inter-sample peak", &isp, bs[b]);
  }
  double l, r, tp;
  dx_errbuf err = {{0}};
  CHECK(dx_loudness_measure(&isp, &l, &r, &tp, &err) == DX_OK);
  CHECK(tp > 20 * log10(0.8 * 0.75)); /* well above the samples' -4.9 dBFS */
  /* short audio (under one 400 ms block), a rate below 8 kHz, no frames */
  dx_audio tiny = {.data = mono, .channels = 1, .samplerate = SR, .frames = 777};
  check_stream("tiny", &tiny, 100);
  dx_loudness_stream *s = NULL;
  CHECK(dx_loudness_stream_begin(1, 4000, &s, &err) == DX_OK);
  CHECK(s && dx_loudness_stream_add(s, mono, 4000, &err) == DX_OK);
  CHECK(s && dx_loudness_stream_end(s, &l, &r, &tp, &err) == DX_OK && isinf(l) && isinf(tp));
  CHECK(dx_loudness_stream_begin(2, SR, &s, &err) == DX_OK);
  CHECK(s && dx_loudness_stream_end(s, &l, &r, &tp, &err) == DX_ERR_EMPTY);
  CHECK(dx_loudness_stream_begin(0, SR, &s, &err) == DX_ERR_INVALID && !s);
  free(m);
  free(st);
  free(mono);
  free(s6);
  free(sine);
}

DX_TEST_MAIN(DX_T(tech3341_integrated_cases_1_to_5), DX_T(tech3342_range_cases_1_to_4),
             DX_T(tech3341_true_peak_cases_15_to_19), DX_T(integrated_matches_libebur128_at_44k), DX_T(halves_match_one_pass), DX_T(channel_weights),
             DX_T(pruned_true_peak_equals_exhaustive), DX_T(stream_equals_whole_buffer))
