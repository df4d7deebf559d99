/* test_audio.c: decode, probe, write, resample and remix (engine/audio). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dx_audio.h"
#include "dx_test.h"
#include "dx_util.h"

static const char *tmp_path(const char *name) {
  static char buf[256];
  snprintf(buf, sizeof buf, "/tmp/dx_test_audio_%d_%s", (int)getpid(), name);
  return buf;
}

static float *sine(int ch, size_t n, double freq, int rate, double amp) {
  float *x = malloc(sizeof(float) * n * (size_t)ch);
  for (int c = 0; c < ch; c++)
    for (size_t i = 0; i < n; i++) x[(size_t)c * n + i] = (float)(amp * sin(2 * M_PI * freq * i / rate + c));
  return x;
}

DX_TEST(write_and_read_back_every_encoding) {
  const dx_audio_encoding encs[] = {DX_ENC_WAV_PCM16, DX_ENC_WAV_PCM24, DX_ENC_WAV_FLOAT, DX_ENC_FLAC, DX_ENC_FLAC24,
                                    DX_ENC_MP3};
  const double tol[] = {1e-4, 1e-6, 0, 1e-4, 1e-6, -1};
  size_t n = 44100;
  float *x = sine(2, n, 440, 44100, 0.5);
  for (size_t k = 0; k < sizeof encs / sizeof encs[0]; k++) {
    char name[32];
    snprintf(name, sizeof name, "enc%zu.%s", k, dx_audio_encoding_ext(encs[k]));
    const char *p = tmp_path(name);
    dx_errbuf err = {{0}};
    CHECK_MSG(dx_audio_write(p, x, 2, n, 44100, encs[k], &err) == DX_OK, "%s: %s", name, err.msg);
    dx_audio_info info;
    CHECK_MSG(dx_audio_probe(p, &info, &err) == DX_OK, "%s: %s", name, err.msg);
    CHECK(info.channels == 2 && info.samplerate == 44100);
    CHECK(!strcmp(info.format, dx_audio_encoding_ext(encs[k])));
    dx_audio a;
    CHECK(dx_audio_load(p, 0, &a, &err) == DX_OK);
    if (tol[k] >= 0) {
      CHECK(a.frames == n);
      double e = 0;
      for (size_t i = 0; i < n * 2 && a.frames == n; i++) e = fmax(e, fabs(a.data[i] - x[i]));
      CHECK_MSG(e <= tol[k], "%s: max error %g", name, e);
    } else {
      CHECK(a.frames >= n); /* MP3 adds encoder delay and padding */
    }
    dx_audio_free(&a);
    unlink(p);
  }
  free(x);
}

/* Integer PCM rounds to the nearest step (full scale 2^15 or 2^23) and clips
 * at the ends, the same in WAV and FLAC (libsndfile's own clipping
 * conversion floors in WAV and rounds in FLAC). */
DX_TEST(integer_samples_round_to_nearest) {
  const dx_audio_encoding encs[] = {DX_ENC_WAV_PCM16, DX_ENC_FLAC, DX_ENC_WAV_PCM24, DX_ENC_FLAC24};
  const double full[] = {32768.0, 32768.0, 8388608.0, 8388608.0};
  const double steps[] = {918.4, 918.6, -574.4, -574.6, 0.25, -0.25, 0.5001, -0.5001, 1e9, -1e9};
  const double want[] = {918, 919, -574, -575, 0, 0, 1, -1, 1e9, -1e9}; /* +-1e9: the ends */
  enum { N = sizeof steps / sizeof steps[0] };
  for (size_t k = 0; k < sizeof encs / sizeof encs[0]; k++) {
    float x[N];
    for (int i = 0; i < N; i++) x[i] = (float)(steps[i] / full[k]);
    char name[32];
    snprintf(name, sizeof name, "round%zu.%s", k, dx_audio_encoding_ext(encs[k]));
    const char *p = tmp_path(name);
    dx_errbuf err = {{0}};
    CHECK_MSG(dx_audio_write(p, x, 1, N, 44100, encs[k], &err) == DX_OK, "%s: %s", name, err.msg);
    dx_audio a;
    CHECK(dx_audio_load(p, 0, &a, &err) == DX_OK && a.frames == N);
    for (int i = 0; i < N && a.frames == N; i++) {
      double w = want[i] >= 1e9 ? full[k] - 1 : want[i] <= -1e9 ? -full[k] : want[i];
      CHECK_MSG(a.data[i] * full[k] == w, "%s: %g steps -> %g, want %g", name, steps[i], a.data[i] * full[k], w);
    }
    dx_audio_free(&a);
    unlink(p);
  }
}

/* The same samples give the same bytes: a float WAV has no PEAK chunk (it
 * holds the time of writing). */
DX_TEST(same_samples_same_bytes) {
  const dx_audio_encoding encs[] = {DX_ENC_WAV_PCM16, DX_ENC_WAV_PCM24, DX_ENC_WAV_FLOAT, DX_ENC_FLAC};
  size_t n = 4410;
  float *x = sine(2, n, 440, 44100, 0.5);
  for (size_t k = 0; k < sizeof encs / sizeof encs[0]; k++) {
    char name_a[32], name_b[32];
    snprintf(name_a, sizeof name_a, "same%zu_a.%s", k, dx_audio_encoding_ext(encs[k]));
    snprintf(name_b, sizeof name_b, "same%zu_b.%s", k, dx_audio_encoding_ext(encs[k]));
    char pa[256], pb[256];
    snprintf(pa, sizeof pa, "%s", tmp_path(name_a));
    snprintf(pb, sizeof pb, "%s", tmp_path(name_b));
    dx_errbuf err = {{0}};
    CHECK(dx_audio_write(pa, x, 2, n, 44100, encs[k], &err) == DX_OK);
    CHECK(dx_audio_write(pb, x, 2, n, 44100, encs[k], &err) == DX_OK);
    size_t na = 0, nb = 0;
    char *a = NULL, *b = NULL;
    CHECK(dx_read_file(pa, &a, &na) == DX_OK && dx_read_file(pb, &b, &nb) == DX_OK);
    CHECK_MSG(a && b && na == nb && !memcmp(a, b, na), "%s: two writes differ", name_a);
    int peak = 0;
    for (size_t i = 0; a && i + 4 <= na; i++) peak |= !memcmp(a + i, "PEAK", 4);
    CHECK_MSG(!peak, "%s has a PEAK chunk", name_a);
    free(a);
    free(b);
    unlink(pa);
    unlink(pb);
  }
  free(x);
}

DX_TEST(truncated_wav_is_corrupt_and_text_unsupported) {
  size_t n = 22050;
  float *x = sine(1, n, 1000, 22050, 0.3);
  const char *p = tmp_path("trunc.wav");
  CHECK(dx_audio_write(p, x, 1, n, 22050, DX_ENC_WAV_PCM16, NULL) == DX_OK);
  CHECK(truncate(p, 44 + 2 * (off_t)n / 2) == 0);
  dx_errbuf err = {{0}};
  dx_audio_info info;
  CHECK(dx_audio_probe(p, &info, &err) == DX_ERR_CORRUPT);
  CHECK(strstr(err.msg, "truncated") != NULL);
  FILE *f = fopen(p, "w");
  fputs("this is not audio, just some words in a text file\n", f);
  fclose(f);
  CHECK(dx_audio_probe(p, &info, &err) == DX_ERR_UNSUPPORTED);
  f = fopen(p, "w");
  fclose(f);
  CHECK(dx_audio_probe(p, &info, &err) == DX_ERR_EMPTY);
  CHECK(dx_audio_probe(tmp_path("missing.wav"), &info, &err) == DX_ERR_NOT_FOUND);
  unlink(p);
  free(x);
}

DX_TEST(probe_from_memory_matches_file) {
  size_t n = 1000;
  float *x = sine(2, n, 300, 8000, 0.2);
  const char *p = tmp_path("mem.flac");
  CHECK(dx_audio_write(p, x, 2, n, 8000, DX_ENC_FLAC, NULL) == DX_OK);
  FILE *f = fopen(p, "rb");
  unsigned char buf[65536];
  size_t len = fread(buf, 1, sizeof buf, f);
  fclose(f);
  dx_audio_info info;
  CHECK(dx_audio_probe_mem(buf, len, &info, NULL) == DX_OK);
  CHECK(info.frames == n && info.channels == 2 && !strcmp(info.format, "flac"));
  CHECK(dx_audio_probe_mem(buf, len / 2, &info, NULL) != DX_OK);
  unlink(p);
  free(x);
}

DX_TEST(too_long_is_refused) {
  size_t n = 8000;
  float *x = sine(1, n, 100, 8000, 0.2);
  const char *p = tmp_path("long.wav");
  CHECK(dx_audio_write(p, x, 1, n, 8000, DX_ENC_WAV_PCM16, NULL) == DX_OK);
  dx_audio a;
  CHECK(dx_audio_load(p, 0.5, &a, NULL) == DX_ERR_TOO_LONG);
  CHECK(dx_audio_load(p, 2.0, &a, NULL) == DX_OK);
  dx_audio_free(&a);
  unlink(p);
  free(x);
}

DX_TEST(resample_keeps_frequency_and_level) {
  size_t n = 44100;
  dx_audio in = {sine(1, n, 1000, 44100, 0.5), 1, 44100, n}, out;
  CHECK(dx_audio_resample(&in, 22050, &out, NULL) == DX_OK);
  CHECK(out.frames == 22050 && out.samplerate == 22050);
  /* Compare with the ideal sine away from the edges. */
  double e = 0;
  for (size_t i = 1000; i < 21000; i++) e = fmax(e, fabs(out.data[i] - 0.5 * sin(2 * M_PI * 1000.0 * i / 22050)));
  CHECK_MSG(e < 2e-3, "max error %g", e);
  dx_audio_free(&out);
  dx_audio_free(&in);
}

DX_TEST(remix_channels) {
  float data[6] = {1, 2, 3, 5, 6, 7};
  dx_audio st = {data, 2, 100, 3}, out;
  CHECK(dx_audio_remix(&st, 1, &out) == DX_OK);
  CHECK(out.data[0] == 3 && out.data[2] == 5);
  dx_audio_free(&out);
  dx_audio mono = {data, 1, 100, 3};
  CHECK(dx_audio_remix(&mono, 2, &out) == DX_OK);
  CHECK(out.channels == 2 && out.data[3] == 1 && out.data[5] == 3);
  dx_audio_free(&out);
}

DX_TEST_MAIN(DX_T(write_and_read_back_every_encoding), DX_T(integer_samples_round_to_nearest),
             DX_T(same_samples_same_bytes),
             DX_T(truncated_wav_is_corrupt_and_text_unsupported),
             DX_T(probe_from_memory_matches_file), DX_T(too_long_is_refused), DX_T(resample_keeps_frequency_and_level),
             DX_T(remix_channels))
