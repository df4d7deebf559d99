/* test_analysis_stream.c: dx_analyzer_run_file's streaming path (files
 * past params.stream_min_seconds, here 0 so that every file streams)
 * against the whole-file path (stream_min_seconds < 0): the same result
 * on a stereo 44.1 kHz WAV, a mono 48 kHz FLAC and a mono file already at
 * the analysis rate (every feature equal, loudness within 1e-6 LU, true
 * peak equal), loudness alone, the same status for truncated files and
 * silence, progress while decoding and cancellation there, peak memory
 * that grows with neither the decoded channels nor the analysis signal,
 * the trim that gives back a whole-file run's buffers, and the signal's
 * scratch folder. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dx_analysis.h"
#include "dx_test.h"
#include "dx_util.h"
#include "test_analysis_synth.h"

static dx_backend *be;
static dx_analyzer *whole, *stream;
static char tmpdir[256];

/* scratch: params.scratch_dir (NULL: the default) */
static dx_analyzer *open_analyzer(double stream_min, int threads, const char *scratch) {
  dx_errbuf err = {{0}};
  dx_analysis_params p;
  dx_analysis_default_params(&p);
  p.stream_min_seconds = stream_min;
  p.threads = threads;
  if (scratch) snprintf(p.scratch_dir, sizeof p.scratch_dir, "%s", scratch);
  dx_analyzer *a = NULL;
  CHECK(dx_analyzer_open(be, &p, &a, &err) == DX_OK);
  return a;
}

static void setup(void) {
  if (be) return;
  dx_errbuf err = {{0}};
  CHECK(dx_backend_open("cpu", &be, &err) == DX_OK);
  if (!be) return;
  whole = open_analyzer(-1, 1, NULL);
  stream = open_analyzer(0, 2, NULL);
  snprintf(tmpdir, sizeof tmpdir, "/tmp/dx_test_analysis_stream_%d", (int)getpid());
  dx_mkdirs(tmpdir);
}

static const char *tmp(const char *name) {
  static char buf[4][512];
  static int k;
  k = (k + 1) % 4;
  snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
  return buf[k];
}

static void same_stat(const char *what, dx_stat a, dx_stat b) {
  CHECK_MSG(a.mean == b.mean && a.std == b.std, "%s: %.9g/%.9g vs %.9g/%.9g", what, a.mean, a.std, b.mean, b.std);
}

static void same_result(const char *file, const dx_analysis_result *a, const dx_analysis_result *b) {
  CHECK_MSG(a->features == b->features && a->duration == b->duration && a->sample_rate == b->sample_rate &&
                a->channels == b->channels && a->analysis_rate == b->analysis_rate && a->frames == b->frames,
            "%s: header fields differ", file);
  CHECK_MSG(a->tempo == b->tempo && a->tempo_confidence == b->tempo_confidence && a->onset_rate == b->onset_rate,
            "%s: tempo %.9g vs %.9g", file, a->tempo, b->tempo);
  CHECK_MSG(a->danceability == b->danceability, "%s: danceability %.9g vs %.9g", file, a->danceability, b->danceability);
  CHECK(a->n_beats == b->n_beats);
  for (size_t i = 0; i < a->n_beats && i < b->n_beats; i++) CHECK(a->beats[i] == b->beats[i]);
  CHECK(a->key_index == b->key_index && a->key_confidence == b->key_confidence && !strcmp(a->key, b->key));
  CHECK(a->energy == b->energy);
  same_stat("rms", a->rms, b->rms);
  same_stat("centroid", a->centroid, b->centroid);
  same_stat("bandwidth", a->bandwidth, b->bandwidth);
  same_stat("rolloff", a->rolloff, b->rolloff);
  same_stat("flatness", a->flatness, b->flatness);
  same_stat("zcr", a->zcr, b->zcr);
  for (int i = 0; i < DX_CONTRAST_N; i++) same_stat("contrast", a->contrast[i], b->contrast[i]);
  CHECK(a->n_mfcc == b->n_mfcc);
  for (int i = 0; i < a->n_mfcc; i++) same_stat("mfcc", a->mfcc[i], b->mfcc[i]);
  for (int i = 0; i < 12; i++) CHECK(a->chroma[i] == b->chroma[i]);
  CHECK_MSG(fabs(a->lufs - b->lufs) <= 1e-6 || a->lufs == b->lufs, "%s: %.9f vs %.9f LUFS", file, a->lufs, b->lufs);
  CHECK_MSG(fabs(a->lra - b->lra) <= 1e-6 || a->lra == b->lra, "%s: range %.9f vs %.9f", file, a->lra, b->lra);
  CHECK_MSG(a->true_peak_db == b->true_peak_db, "%s: %.9f vs %.9f dBTP", file, a->true_peak_db, b->true_peak_db);
}

static void compare_paths(const char *file, unsigned features) {
  dx_analysis_result a, b;
  dx_errbuf err = {{0}};
  dx_status sa = dx_analyzer_run_file(whole, file, features, NULL, NULL, &a, &err);
  CHECK_MSG(sa == DX_OK, "%s (whole): %s", file, err.msg);
  dx_status sb = dx_analyzer_run_file(stream, file, features, NULL, NULL, &b, &err);
  CHECK_MSG(sb == DX_OK, "%s (streamed): %s", file, err.msg);
  if (sa == DX_OK && sb == DX_OK) same_result(file, &a, &b);
  if (sb == DX_OK && (features & DX_AF_LOUDNESS)) CHECK(isfinite(b.lufs) && b.lra > 0 && isfinite(b.true_peak_db));
  dx_analysis_result_free(&a);
  dx_analysis_result_free(&b);
}

/* The music mix, louder towards the end; right channel different. */
static float *music(double seconds, int sr, int channels, size_t *n_out) {
  size_t n = 0;
  float *m = synth_music(seconds, sr, &n);
  float *y = malloc((size_t)channels * n * sizeof *y);
  for (size_t i = 0; i < n; i++) {
    float g = (float)(0.4 + 0.5 * i / n);
    y[i] = g * m[i];
    if (channels > 1) y[n + i] = 0.5f * g * m[i] + 0.03f * (float)sin(0.002 * i);
  }
  free(m);
  *n_out = n;
  return y;
}

DX_TEST(streamed_equals_whole_file) {
  setup();
  if (!whole || !stream) return;
  dx_errbuf err = {{0}};
  size_t n;
  float *y = music(60.0, 44100, 2, &n);
  CHECK(dx_audio_write(tmp("st44.wav"), y, 2, n, 44100, DX_ENC_WAV_PCM16, &err) == DX_OK);
  free(y);
  y = music(37.3, 48000, 1, &n);
  CHECK(dx_audio_write(tmp("mono48.flac"), y, 1, n, 48000, DX_ENC_FLAC24, &err) == DX_OK);
  free(y);
  y = music(13.1, 22050, 1, &n);
  CHECK(dx_audio_write(tmp("mono22.wav"), y, 1, n, 22050, DX_ENC_WAV_FLOAT, &err) == DX_OK);
  free(y);
  compare_paths(tmp("st44.wav"), DX_AF_ALL);
  compare_paths(tmp("mono48.flac"), DX_AF_ALL);
  compare_paths(tmp("mono22.wav"), DX_AF_ALL);
  compare_paths(tmp("st44.wav"), DX_AF_LOUDNESS);
  compare_paths(tmp("mono48.flac"), DX_AF_TEMPO | DX_AF_KEY);
}

static dx_status both_status(const char *file, dx_errbuf *err) {
  dx_analysis_result r;
  dx_status a = dx_analyzer_run_file(whole, file, DX_AF_ALL, NULL, NULL, &r, err);
  dx_analysis_result_free(&r);
  dx_status b = dx_analyzer_run_file(stream, file, DX_AF_ALL, NULL, NULL, &r, err);
  dx_analysis_result_free(&r);
  CHECK_MSG(a == b, "%s: %s whole, %s streamed", file, dx_status_name(a), dx_status_name(b));
  return b;
}

static void truncate_copy(const char *from, const char *to, double keep) {
  FILE *f = fopen(from, "rb");
  CHECK(f != NULL);
  if (!f) return;
  fseek(f, 0, SEEK_END);
  long len = ftell(f), cut = (long)(len * keep);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t)cut);
  CHECK(fread(buf, 1, (size_t)cut, f) == (size_t)cut);
  fclose(f);
  f = fopen(to, "wb");
  CHECK(f && fwrite(buf, 1, (size_t)cut, f) == (size_t)cut);
  if (f) fclose(f);
  free(buf);
}

DX_TEST(damaged_and_silent_files_fail_alike) {
  setup();
  if (!whole || !stream) return;
  dx_errbuf err = {{0}};
  truncate_copy(tmp("st44.wav"), tmp("cut.wav"), 0.6);
  CHECK(both_status(tmp("cut.wav"), &err) == DX_ERR_CORRUPT);
  /* a FLAC stops short only once decoding reaches the missing part */
  truncate_copy(tmp("mono48.flac"), tmp("cut.flac"), 0.6);
  CHECK(both_status(tmp("cut.flac"), &err) == DX_ERR_CORRUPT);
  size_t n = 44100 * 3;
  float *z = calloc(2 * n, sizeof *z);
  CHECK(dx_audio_write(tmp("silent.wav"), z, 2, n, 44100, DX_ENC_WAV_PCM16, &err) == DX_OK);
  free(z);
  CHECK(both_status(tmp("silent.wav"), &err) == DX_ERR_SILENT);
  /* the streamed analyzer then still gives the whole-file result */
  compare_paths(tmp("mono48.flac"), DX_AF_ALL);
}

static int seen[128], n_seen;
static dx_status record(void *ud, int pct) {
  int stop_at = *(int *)ud;
  if (n_seen < 128) seen[n_seen++] = pct;
  return stop_at >= 0 && pct >= stop_at ? DX_ERR_CANCELLED : DX_OK;
}

DX_TEST(progress_and_cancel_while_decoding) {
  setup();
  if (!stream) return;
  dx_analysis_result r;
  dx_errbuf err = {{0}};
  int never = -1, at5 = 5;
  n_seen = 0;
  CHECK(dx_analyzer_run_file(stream, tmp("st44.wav"), DX_AF_ALL, record, &never, &r, &err) == DX_OK);
  dx_analysis_result_free(&r);
  int decoding = 0, monotone = 1;
  for (int i = 0; i < n_seen; i++) {
    if (seen[i] > 0 && seen[i] < 20) decoding++;
    if (i && seen[i] < seen[i - 1]) monotone = 0;
  }
  CHECK_MSG(decoding >= 10 && monotone && n_seen > 0 && seen[n_seen - 1] == 100, "%d calls while decoding", decoding);
  /* stopped at 5 %: a quarter into decoding, before any feature work */
  n_seen = 0;
  CHECK(dx_analyzer_run_file(stream, tmp("st44.wav"), DX_AF_ALL, record, &at5, &r, &err) == DX_ERR_CANCELLED);
  dx_analysis_result_free(&r);
  CHECK(n_seen == 5 && seen[n_seen - 1] == 5);
  /* loudness alone reports decoding over the whole range */
  n_seen = 0;
  CHECK(dx_analyzer_run_file(stream, tmp("st44.wav"), DX_AF_LOUDNESS, record, &never, &r, &err) == DX_OK);
  dx_analysis_result_free(&r);
  CHECK(n_seen >= 50 && seen[n_seen - 1] == 100);
}

/* ---- memory ---- */

/* seconds of stereo 44.1 kHz noise with a pulse, written block by block */
static void write_long(const char *path, double seconds) {
  dx_errbuf err = {{0}};
  dx_audio_writer *w = NULL;
  CHECK(dx_audio_writer_open(path, 2, 44100, DX_ENC_WAV_PCM16, 0, &w, &err) == DX_OK);
  if (!w) return;
  enum { B = 65536 };
  float *buf = malloc(2 * B * sizeof *buf);
  synth_rng rng = {11};
  size_t n = (size_t)(seconds * 44100);
  for (size_t i0 = 0; i0 < n; i0 += B) {
    size_t k = n - i0 < B ? n - i0 : B;
    for (size_t i = 0; i < k; i++) {
      float pulse = (i0 + i) % 22050 < 2000 ? 1.0f : 0.3f;
      buf[i] = 0.2f * pulse * synth_noise(&rng);
      buf[B + i] = 0.15f * pulse * synth_noise(&rng);
    }
    CHECK(dx_audio_writer_write(w, buf, B, k, &err) == DX_OK);
  }
  free(buf);
  CHECK(dx_audio_writer_close(w, &err) == DX_OK);
}

typedef struct {
  const char *path;
  double stream_min;
  unsigned features;
} analyse_job;

/* A child that analyses job->path. */
static int analyse_in_child(void *ctx) {
  const analyse_job *j = ctx;
  dx_analyzer *a = open_analyzer(j->stream_min, 1, NULL);
  dx_analysis_result r;
  dx_errbuf err = {{0}};
  return a && dx_analyzer_run_file(a, j->path, j->features, NULL, NULL, &r, &err) == DX_OK ? 0 : -1;
}

/* Peak resident memory (KiB) of a child that analyses path. */
static long child_peak(const char *path, double stream_min, unsigned features) {
  analyse_job j = {path, stream_min, features};
  return dx_test_child_peak_kib(analyse_in_child, &j);
}

DX_TEST(streamed_memory_does_not_grow_with_channels) {
  setup();
  if (!be) return;
  const char *p2 = tmp("two.wav"), *p10 = tmp("ten.wav");
  write_long(p2, 120);
  write_long(p10, 600);
  long s_loud = child_peak(p10, 0, DX_AF_LOUDNESS) - child_peak(p2, 0, DX_AF_LOUDNESS);
  long s_all = child_peak(p10, 0, DX_AF_ALL) - child_peak(p2, 0, DX_AF_ALL);
  long w_all = child_peak(p10, -1, DX_AF_ALL) - child_peak(p2, -1, DX_AF_ALL);
  fprintf(stderr, "  peak RSS growth from 2 to 10 min: streamed %ld KiB (loudness alone %ld KiB), whole file %ld KiB\n",
          s_all, s_loud, w_all);
  /* 8 more minutes decoded: 2 channels + the downmix at 44.1 kHz, 248 MiB;
   * the analysis signal at 22,050 Hz: 40 MiB, which waits in the scratch
   * file; the per-frame features (196 floats a frame): 16 MiB */
  long decoded = 480L * 44100 * 3 * 4 / 1024, signal = 480L * 22050 * 4 / 1024;
  CHECK_MSG(s_loud < 4096, "loudness alone grew by %ld KiB", s_loud);
  CHECK_MSG(s_all < signal * 6 / 10, "streamed run grew by %ld KiB (the signal: %ld KiB)", s_all, signal);
  CHECK_MSG(w_all - s_all > decoded * 8 / 10, "streaming saved %ld KiB of %ld", w_all - s_all, decoded);
  unlink(p2);
  unlink(p10);
}

static long resident_kib(void) {
  long pages = 0, rss = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (f && fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = 0;
  if (f) fclose(f);
  return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

/* dx_analyzer_trim (what an idle demixd worker does) gives back the
 * buffers a whole-file run of a 5-minute stereo track grew (its decoded
 * channels alone are 101 MiB), and the analyzer then gives the same
 * result again. */
DX_TEST(trim_gives_back_track_buffers) {
  setup();
  if (!whole) return;
  const char *path = tmp("five.wav");
  write_long(path, 300);
  dx_analysis_result a, b;
  dx_errbuf err = {{0}};
  CHECK(dx_analyzer_run_file(whole, path, DX_AF_ALL, NULL, NULL, &a, &err) == DX_OK);
  long before = resident_kib();
  dx_analyzer_trim(whole);
  long after = resident_kib(), decoded = 300L * 44100 * 2 * 4 / 1024;
  fprintf(stderr, "  resident %ld KiB before the trim, %ld KiB after\n", before, after);
  CHECK_MSG(before - after > decoded, "the trim gave back %ld KiB", before - after);
  CHECK(dx_analyzer_run_file(whole, path, DX_AF_ALL, NULL, NULL, &b, &err) == DX_OK);
  same_result("five.wav after the trim", &a, &b);
  dx_analysis_result_free(&a);
  dx_analysis_result_free(&b);
  dx_analyzer_trim(NULL);
  unlink(path);
}

/* The scratch file goes to params.scratch_dir; where it cannot be made the
 * run fails with DX_ERR_IO naming the folder, and the same analyzer then
 * gives the whole-file result once the folder exists. */
DX_TEST(scratch_dir_used_and_missing_one_reported) {
  setup();
  if (!whole) return;
  const char *dir = tmp("scratch");
  dx_analyzer *a = open_analyzer(0, 2, dir);
  if (!a) return;
  dx_errbuf err = {{0}};
  dx_analysis_result r, w;
  CHECK(dx_analyzer_run_file(a, tmp("mono48.flac"), DX_AF_ALL, NULL, NULL, &r, &err) == DX_ERR_IO);
  CHECK_MSG(strstr(err.msg, "scratch file") && strstr(err.msg, dir), "%s", err.msg);
  dx_analysis_result_free(&r);
  CHECK(dx_mkdirs(dir) == DX_OK);
  CHECK(dx_analyzer_run_file(a, tmp("mono48.flac"), DX_AF_ALL, NULL, NULL, &r, &err) == DX_OK);
  CHECK(dx_analyzer_run_file(whole, tmp("mono48.flac"), DX_AF_ALL, NULL, NULL, &w, &err) == DX_OK);
  same_result("mono48.flac through the scratch folder", &w, &r);
  dx_analysis_result_free(&r);
  dx_analysis_result_free(&w);
  dx_analyzer_close(a);
}

DX_TEST(cleanup) {
  dx_analyzer_close(whole);
  dx_analyzer_close(stream);
  dx_backend_close(be);
  dx_rmtree(tmpdir);
}

DX_TEST_MAIN(DX_T(streamed_equals_whole_file), DX_T(damaged_and_silent_files_fail_alike),
             DX_T(progress_and_cancel_while_decoding), DX_T(streamed_memory_does_not_grow_with_channels),
             DX_T(trim_gives_back_track_buffers), DX_T(scratch_dir_used_and_missing_one_reported), DX_T(cleanup))
