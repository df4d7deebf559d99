/* bench_analysis.c: the analysis benchmark's C driver (built by run.sh
 * as the CMake target bench_analysis).
 *
 *   bench_analysis make DIR N SECONDS     write N synthetic 44.1 kHz stereo
 *                                         16-bit WAV tracks (drums + chords,
 *                                         tempo and key varying per track)
 *   bench_analysis run DEVICE [-j N] FILE...
 *                                         analyse every file (all feature
 *                                         groups): -j 1 (default) one track
 *                                         at a time, loudness on a helper
 *                                         thread; -j N N worker threads,
 *                                         each with its own backend and
 *                                         analyzer; each worker warms up
 *                                         on the first file (not counted)
 *
 * `run` prints one JSON line: device, workers, tracks, audio seconds, the
 * seconds spent decoding, resampling, moving data to/from the device,
 * computing features and measuring loudness (summed over tracks), and the
 * batch's wall time per track and as x-realtime. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dx_analysis.h"
#include "dx_util.h"
#include "../../tests/unit/test_analysis_synth.h"

/* Track i of a batch (its tempo and key follow from i alone, so a batch
 * is the same whatever the thread count). */
static int make_track(const char *dir, int i, double seconds) {
  double bpm = 70 + (i * 37) % 111;
  int key = i % 24, sr = 44100, rc = 1;
  size_t na = 0, nb = 0;
  float *a = synth_progression(key % 12, key >= 12, seconds, 2.0, sr, &na);
  float *b = synth_drums_style(bpm, seconds, sr, i % 2, &nb);
  float *st = a && b ? malloc(2 * na * sizeof *st) : NULL;
  if (st) {
    synth_rng rng = {(uint64_t)i + 1};
    for (size_t k = 0; k < na; k++) {
      float v = 0.6f * a[k] + 0.5f * b[k] + 0.002f * synth_noise(&rng);
      st[k] = v;
      st[na + k] = 0.8f * v;
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/track_%03d.wav", dir, i);
    dx_errbuf err = {{0}};
    rc = dx_audio_write(path, st, 2, na, sr, DX_ENC_WAV_PCM16, &err) != DX_OK;
    if (rc) fprintf(stderr, "%s: %s\n", path, err.msg);
  }
  free(a);
  free(b);
  free(st);
  return rc;
}

typedef struct {
  const char *dir;
  double seconds;
  int n;
  atomic_int next, fail;
} make_job;

static void *make_worker(void *arg) {
  make_job *m = arg;
  for (int i; !atomic_load(&m->fail) && (i = atomic_fetch_add(&m->next, 1)) < m->n;)
    if (make_track(m->dir, i, m->seconds)) atomic_store(&m->fail, 1);
  return NULL;
}

/* The batch on every core (synthesis takes longer than analysing). */
static int make(const char *dir, int n, double seconds) {
  if (dx_mkdirs(dir) != DX_OK) return 1;
  make_job m = {.dir = dir, .seconds = seconds, .n = n};
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  int nt = cores < 1 ? 1 : cores > 64 ? 64 : (int)cores;
  if (nt > n) nt = n > 0 ? n : 1;
  pthread_t th[64];
  int started = 0;
  for (; started < nt; started++)
    if (pthread_create(&th[started], NULL, make_worker, &m)) break;
  if (!started) make_worker(&m);
  for (int t = 0; t < started; t++) pthread_join(th[t], NULL);
  return atomic_load(&m.fail);
}

typedef struct {
  const char *device;
  char **files;
  int nfiles, threads;
  atomic_int next, ready, fail;
  double audio, dec, res, xfer, comp, loud; /* summed under mu */
  pthread_mutex_t mu;
  char desc[160], name[16];
} bench;

/* One worker: own backend and analyzer, a warm-up run (not counted), then
 * files taken one at a time until none is left. */
static void *worker(void *arg) {
  bench *b = arg;
  dx_backend *be = NULL;
  dx_analyzer *an = NULL;
  dx_errbuf err = {{0}};
  dx_analysis_params p;
  dx_analysis_default_params(&p);
  p.threads = b->threads;
  if (dx_backend_open(b->device, &be, &err) != DX_OK || dx_analyzer_cached(be, &p, &an, &err) != DX_OK) {
    fprintf(stderr, "bench_analysis: %s\n", err.msg);
    atomic_store(&b->fail, 1);
    atomic_fetch_add(&b->ready, 1);
    dx_backend_close(be);
    return NULL;
  }
  dx_analysis_result r;
  if (dx_analyzer_run_file(an, b->files[0], DX_AF_ALL, NULL, NULL, &r, &err) != DX_OK) atomic_store(&b->fail, 1);
  dx_analysis_result_free(&r);
  pthread_mutex_lock(&b->mu);
  snprintf(b->name, sizeof b->name, "%s", be->name);
  snprintf(b->desc, sizeof b->desc, "%s", be->device_desc);
  pthread_mutex_unlock(&b->mu);
  atomic_fetch_add(&b->ready, 1);
  while (atomic_load(&b->ready) >= 0) /* the main thread sets -1 when every worker is warm */
    usleep(100);
  for (int i; (i = atomic_fetch_add(&b->next, 1)) < b->nfiles;) {
    dx_status st = dx_analyzer_run_file(an, b->files[i], DX_AF_ALL, NULL, NULL, &r, &err);
    if (st != DX_OK) {
      fprintf(stderr, "bench_analysis: %s: %s\n", b->files[i], err.msg);
      atomic_store(&b->fail, 1);
    }
    pthread_mutex_lock(&b->mu);
    b->audio += r.duration;
    b->dec += r.t_decode;
    b->res += r.t_resample;
    b->xfer += r.t_transfer;
    b->comp += r.t_compute;
    b->loud += r.t_loudness;
    pthread_mutex_unlock(&b->mu);
    dx_analysis_result_free(&r);
  }
  dx_backend_close(be);
  return NULL;
}

/* jobs = 1: one track at a time, loudness on a second thread when the
 * host has two cores; jobs > 1: that many tracks at a time, one thread each. */
static int run(const char *device, int jobs, int nfiles, char **files) {
  bench b = {.device = device, .files = files, .nfiles = nfiles};
  b.threads = jobs == 1 && sysconf(_SC_NPROCESSORS_ONLN) >= 2 ? 2 : 1;
  pthread_mutex_init(&b.mu, NULL);
  pthread_t th[64];
  int n = 0;
  for (int t = 0; t < jobs && t < 64; t++)
    if (pthread_create(&th[n], NULL, worker, &b) == 0) n++;
  while (atomic_load(&b.ready) < n) usleep(1000);
  double t0 = dx_now();
  atomic_store(&b.ready, -1);
  for (int t = 0; t < n; t++) pthread_join(th[t], NULL);
  double wall = dx_now() - t0;
  if (atomic_load(&b.fail) || !n) return 1;
  /* per-track figures: wall time of the batch divided by its tracks; the
   * parts are summed over tracks (with several workers they overlap) */
  double after = wall - b.dec / n; /* decoding runs in the workers too: take out its share of the wall */
  printf("{\"impl\": \"demix\", \"device\": \"%s\", \"device_desc\": \"%s\", \"jobs\": %d, \"tracks\": %d,"
         " \"audio_s\": %.1f, \"decode_s\": %.3f, \"resample_s\": %.3f, \"transfer_s\": %.3f, \"features_s\": %.3f,"
         " \"loudness_s\": %.3f, \"total_s\": %.3f, \"s_per_track\": %.4f, \"s_per_track_after_decode\": %.4f,"
         " \"x_realtime\": %.1f, \"x_realtime_after_decode\": %.1f}\n",
         b.name, b.desc, n, nfiles, b.audio, b.dec, b.res, b.xfer, b.comp, b.loud, wall, wall / nfiles,
         after / nfiles, b.audio / wall, b.audio / after);
  pthread_mutex_destroy(&b.mu);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 5 && !strcmp(argv[1], "make")) return make(argv[2], atoi(argv[3]), atof(argv[4]));
  if (argc >= 6 && !strcmp(argv[1], "run") && !strcmp(argv[3], "-j"))
    return run(argv[2], atoi(argv[4]) > 0 ? atoi(argv[4]) : 1, argc - 5, argv + 5);
  if (argc >= 4 && !strcmp(argv[1], "run")) return run(argv[2], 1, argc - 3, argv + 3);
  fprintf(stderr, "usage: bench_analysis make DIR N SECONDS | bench_analysis run cpu|cuda|auto [-j N] FILE...\n");
  return 2;
}
