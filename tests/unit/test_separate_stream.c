/* test_separate_stream.c: streamed audio I/O and file-to-file separation:
 *   - the block writer with temporary name, rename and peak rescale gives
 *     the same samples as dx_audio_write of a buffer rescaled in memory;
 *   - the reader resamples with soxr's streaming interface: same length as
 *     the one-shot dx_audio_resample, samples within 1e-6 of it;
 *   - dx_separator_run_file (hpss, every stem and two stems, WAV at another
 *     rate, channel conversion) writes the same stems as load + convert +
 *     dx_separator_run + dx_stems_write, leaves no scratch file, and a
 *     cancelled run leaves no file at all. */
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dx_audio.h"
#include "dx_separate.h"
#include "dx_test.h"
#include "dx_util.h"

static float *make_audio(int channels, size_t frames, int rate, unsigned seed) {
  float *x = malloc((size_t)channels * frames * sizeof *x);
  uint32_t st = seed * 2654435761u + 7;
  for (int c = 0; c < channels; c++)
    for (size_t i = 0; i < frames; i++) {
      st = st * 1664525u + 1013904223u;
      double noise = ((st >> 8) / 16777216.0 - 0.5) * 0.3;
      double click = (i % 11025) < 40 ? 0.8 : 0.0;
      x[(size_t)c * frames + i] = (float)(0.4 * sin(2 * M_PI * (220.0 + 110 * c) * i / rate) + noise + click);
    }
  return x;
}

static int count_entries(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return -1;
  int n = 0;
  struct dirent *de;
  while ((de = readdir(d)) != NULL)
    if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) n++;
  closedir(d);
  return n;
}

static int same_samples(const char *a, const char *b) {
  dx_audio x = {0}, y = {0};
  int ok = dx_audio_load(a, 0, &x, NULL) == DX_OK && dx_audio_load(b, 0, &y, NULL) == DX_OK && x.frames == y.frames &&
           x.channels == y.channels && x.samplerate == y.samplerate &&
           !memcmp(x.data, y.data, (size_t)x.channels * x.frames * sizeof(float));
  dx_audio_free(&x);
  dx_audio_free(&y);
  return ok;
}

DX_TEST(writer_rescales_like_the_whole_buffer) {
  char dir[64];
  snprintf(dir, sizeof dir, "/tmp/dx_sstream_XXXXXX");
  CHECK(mkdtemp(dir) != NULL);
  size_t n = 30011;
  float *x = make_audio(2, n, 44100, 1);
  for (size_t i = 0; i < 2 * n; i++) x[i] *= 2.5f; /* peak well above 1 */
  char pa[128], pb[128];
  snprintf(pa, sizeof pa, "%s/a.wav", dir);
  snprintf(pb, sizeof pb, "%s/b.wav", dir);
  dx_audio_writer *w = NULL;
  dx_errbuf err = {{0}};
  CHECK(dx_audio_writer_open(pa, 2, 44100, DX_ENC_WAV_PCM16, DX_WRITER_RESCALE, &w, &err) == DX_OK);
  for (size_t off = 0; off < n; off += 7001) {
    size_t k = n - off < 7001 ? n - off : 7001;
    float *blk = malloc(2 * k * sizeof *blk);
    memcpy(blk, x + off, k * sizeof *blk);
    memcpy(blk + k, x + n + off, k * sizeof *blk);
    CHECK(dx_audio_writer_write(w, blk, k, k, &err) == DX_OK);
    free(blk);
  }
  CHECK(count_entries(dir) == 0); /* nothing visible before close */
  CHECK(dx_audio_writer_close(w, &err) == DX_OK);
  float peak = 0;
  for (size_t i = 0; i < 2 * n; i++) peak = fmaxf(peak, fabsf(x[i]));
  float g = 1.0f / (1.01f * peak);
  for (size_t i = 0; i < 2 * n; i++) x[i] *= g;
  CHECK(dx_audio_write(pb, x, 2, n, 44100, DX_ENC_WAV_PCM16, &err) == DX_OK);
  CHECK(same_samples(pa, pb));
  CHECK(count_entries(dir) == 2);
  /* an aborted writer leaves nothing */
  snprintf(pa, sizeof pa, "%s/c.flac", dir);
  CHECK(dx_audio_writer_open(pa, 2, 44100, DX_ENC_FLAC, 0, &w, &err) == DX_OK);
  CHECK(dx_audio_writer_write(w, x, n, 100, &err) == DX_OK);
  dx_audio_writer_abort(w);
  CHECK(count_entries(dir) == 2);
  dx_rmtree(dir);
  free(x);
}

DX_TEST(reader_resamples_like_oneshot) {
  char dir[64];
  snprintf(dir, sizeof dir, "/tmp/dx_sstream_XXXXXX");
  CHECK(mkdtemp(dir) != NULL);
  char path[128];
  snprintf(path, sizeof path, "%s/in.wav", dir);
  const int rates[] = {48000, 22050, 44100};
  for (int ri = 0; ri < 3; ri++) {
    size_t n = (size_t)rates[ri] * 3 + 333;
    float *x = make_audio(2, n, rates[ri], 2);
    CHECK(dx_audio_write(path, x, 2, n, rates[ri], DX_ENC_WAV_FLOAT, NULL) == DX_OK);
    dx_audio a = {0}, r = {0};
    CHECK(dx_audio_load(path, 0, &a, NULL) == DX_OK);
    CHECK(dx_audio_resample(&a, 44100, &r, NULL) == DX_OK);
    dx_audio_reader *rd = NULL;
    dx_errbuf err = {{0}};
    CHECK(dx_audio_reader_open(path, 0, 44100, 2, dir, &rd, &err) == DX_OK);
    if (!rd) break;
    CHECK(dx_audio_reader_frames(rd) == r.frames);
    float *y = malloc(2 * r.frames * sizeof *y);
    /* read in odd pieces, out of order */
    size_t cut = r.frames / 3 + 17;
    CHECK(dx_audio_reader_read(rd, cut, r.frames - cut, y + cut, r.frames, &err) == DX_OK);
    CHECK(dx_audio_reader_read(rd, 0, cut, y, r.frames, &err) == DX_OK);
    double md = 0;
    for (size_t i = 0; i < 2 * r.frames; i++) md = fmax(md, fabs((double)y[i] - r.data[i]));
    CHECK_MSG(md < 1e-6, "rate %d: max difference to the one-shot resampler %.3g", rates[ri], md);
    if (rates[ri] != 44100) fprintf(stderr, "  %d Hz -> 44100: max |stream - oneshot| = %.3g\n", rates[ri], md);
    /* mono out: the mean of the channels */
    dx_audio_reader_close(rd);
    CHECK(dx_audio_reader_open(path, 0, 44100, 1, dir, &rd, &err) == DX_OK);
    CHECK(dx_audio_reader_read(rd, 0, 1000, y, 1000, &err) == DX_OK);
    CHECK_NEAR(y[500], (r.data[500] + r.data[r.frames + 500]) * 0.5f, 1e-6);
    CHECK(dx_audio_reader_read(rd, r.frames - 10, 11, y, 11, &err) == DX_ERR_INVALID);
    dx_audio_reader_close(rd);
    CHECK(dx_audio_reader_open(path, 1.0, 44100, 2, dir, &rd, &err) == DX_ERR_TOO_LONG);
    CHECK(count_entries(dir) == 1); /* the scratch files are gone */
    free(y);
    free(x);
    dx_audio_free(&a);
    dx_audio_free(&r);
  }
  dx_rmtree(dir);
}

static int cancel_at(void *user, size_t done, size_t total) {
  (void)total;
  return done >= *(size_t *)user;
}

DX_TEST(run_file_equals_in_memory) {
  char dir[64], out1[128], out2[128], path[128];
  snprintf(dir, sizeof dir, "/tmp/dx_sstream_XXXXXX");
  CHECK(mkdtemp(dir) != NULL);
  snprintf(path, sizeof path, "%s/in.wav", dir);
  snprintf(out1, sizeof out1, "%s/stream", dir);
  snprintf(out2, sizeof out2, "%s/memory", dir);
  /* mono at 48 kHz: resampled and duplicated to the model's 2 channels */
  size_t n = 48000 * 4 + 5;
  float *x = make_audio(1, n, 48000, 3);
  CHECK(dx_audio_write(path, x, 1, n, 48000, DX_ENC_WAV_PCM24, NULL) == DX_OK);
  dx_separator *sep = NULL;
  dx_errbuf err = {{0}};
  CHECK(dx_separator_load(dir, "hpss", &sep, &err) == DX_OK);
  if (!sep) return;
  const char *two[] = {NULL, "harmonic", "percussive"};
  const dx_audio_encoding encs[] = {DX_ENC_WAV_FLOAT, DX_ENC_WAV_PCM16, DX_ENC_FLAC};
  for (int v = 0; v < 3; v++) {
    dx_separate_params p = dx_separate_default_params();
    p.two_stems = two[v];
    p.other_add = v == 2;
    dx_stems info = {0};
    char paths[DX_STEMS_MAX][1024];
    CHECK(dx_separator_run_file(sep, NULL, path, 0, &p, out1, encs[v], &info, paths, &err) == DX_OK);
    dx_audio a = {0};
    dx_stems st = {0};
    char paths2[DX_STEMS_MAX][1024];
    CHECK(dx_audio_load(path, 0, &a, NULL) == DX_OK);
    CHECK(dx_separator_convert(sep, &a, NULL) == DX_OK);
    CHECK(dx_separator_run(sep, NULL, &a, &p, &st, &err) == DX_OK);
    CHECK(info.n == st.n && info.frames == st.frames && info.channels == 2 && info.samplerate == 44100);
    CHECK(dx_stems_write(&st, out2, encs[v], paths2, &err) == DX_OK);
    for (int k = 0; k < st.n; k++) {
      CHECK(!strcmp(info.names[k], st.names[k]));
      CHECK_MSG(same_samples(paths[k], paths2[k]), "variant %d stem %s differs", v, st.names[k]);
    }
    CHECK(count_entries(out1) == st.n); /* no scratch files left */
    dx_stems_free(&st);
    dx_audio_free(&a);
    dx_rmtree(out1);
    dx_rmtree(out2);
  }
  /* a cancelled run leaves no stem and no scratch file */
  dx_separate_params p = dx_separate_default_params();
  size_t stop = 3;
  p.progress = cancel_at;
  p.progress_user = &stop;
  dx_stems info = {0};
  CHECK(dx_separator_run_file(sep, NULL, path, 0, &p, out1, DX_ENC_WAV_PCM16, &info, NULL, &err) == DX_ERR_CANCELLED);
  CHECK(count_entries(out1) == -1); /* not even the folder it made */
  /* too long, missing file, unknown stem */
  p.progress = NULL;
  CHECK(dx_separator_run_file(sep, NULL, path, 2.0, &p, out1, DX_ENC_WAV_PCM16, &info, NULL, &err) ==
        DX_ERR_TOO_LONG);
  char missing[160];
  snprintf(missing, sizeof missing, "%s/nope.wav", dir);
  CHECK(dx_separator_run_file(sep, NULL, missing, 0, &p, out1, DX_ENC_WAV_PCM16, &info, NULL, &err) ==
        DX_ERR_NOT_FOUND);
  p.two_stems = "kazoo";
  CHECK(dx_separator_run_file(sep, NULL, path, 0, &p, out1, DX_ENC_WAV_PCM16, &info, NULL, &err) == DX_ERR_INVALID);
  CHECK(count_entries(out1) <= 0);
  dx_separator_free(sep);
  dx_rmtree(dir);
  free(x);
}

DX_TEST_MAIN(DX_T(writer_rescales_like_the_whole_buffer), DX_T(reader_resamples_like_oneshot),
             DX_T(run_file_equals_in_memory))
