/* cmd_analyze.c: `demix analyze FILE|DIR... [--json] [--features a,b]
 * [--device cpu|cuda|auto]`: analyse audio files locally, no server or
 * database needed. A folder stands for its audio files at any depth (by
 * extension, each folder's in name order: dx_cli_inputs_add). Prints a
 * readable summary per file, or with --json one JSON document: the result object (with "file") for a
 * single file argument, else an array of them; a file that fails appears
 * as {"file", "error": {"code", "message"}}. Exit status 1 when any file
 * failed, 2 for usage errors. -j N analyses N files at a time on N worker
 * threads, each with its own backend and analyzer (output stays in
 * argument order); with one worker the loudness runs on a second thread
 * beside the features when the host has two cores or more. */
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dx_analysis.h"
#include "dx_cli.h"
#include "dx_util.h"

static void print_human(const char *path, const dx_analysis_result *r, const char *device) {
  unsigned f = r->features;
  printf("%s  (%.1f s, %d Hz, %d ch)\n", path, r->duration, r->sample_rate, r->channels);
  if (f & DX_AF_TEMPO)
    printf("  tempo      %.1f BPM (confidence %.2f), %zu beats, %.2f onsets/s\n", r->tempo, r->tempo_confidence,
           r->n_beats, r->onset_rate);
  if (f & DX_AF_KEY) printf("  key        %s (%s, confidence %.2f)\n", r->key, r->camelot, r->key_confidence);
  if (f & DX_AF_ENERGY) printf("  energy     %.3f (RMS mean %.4f, std %.4f)\n", r->energy, r->rms.mean, r->rms.std);
  if (f & DX_AF_LOUDNESS)
    printf("  loudness   %.1f LUFS, range %.1f LU, true peak %.1f dBTP\n", r->lufs, r->lra, r->true_peak_db);
  if (f & DX_AF_SPECTRAL)
    printf("  spectral   centroid %.0f Hz, bandwidth %.0f Hz, rolloff %.0f Hz, flatness %.4f, ZCR %.4f\n",
           r->centroid.mean, r->bandwidth.mean, r->rolloff.mean, r->flatness.mean, r->zcr.mean);
  if (f & DX_AF_MFCC) {
    printf("  mfcc      ");
    for (int i = 0; i < r->n_mfcc; i++) printf(" %.1f", r->mfcc[i].mean);
    printf("\n");
  }
  if (f & DX_AF_CHROMA) {
    static const char *const pc[12] = {"C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"};
    printf("  chroma    ");
    for (int i = 0; i < 12; i++) printf(" %s %.2f", pc[i], r->chroma[i]);
    printf("\n");
  }
  double work = r->t_resample + r->t_transfer + r->t_compute + r->t_loudness;
  printf("  time       decode %.3f s, resample %.3f s, transfer %.3f s, features %.3f s, loudness %.3f s"
         " (%.0fx realtime after decode, %s)\n",
         r->t_decode, r->t_resample, r->t_transfer, r->t_compute, r->t_loudness, work > 0 ? r->duration / work : 0,
         device);
}

/* One file's outcome, filled by whichever worker took it. */
typedef struct {
  dx_analysis_result r;
  dx_status st;
  dx_errbuf err;
  const char *device; /* backend name */
} item;

typedef struct {
  const dx_cli_inputs *files;
  const char *device;
  unsigned mask;
  const dx_analysis_params *ap;
  item *items;
  atomic_size_t next;
} batch;

/* A worker: its own backend and analyzer, files taken one at a time. */
static void *batch_worker(void *arg) {
  batch *b = arg;
  dx_backend *be = NULL;
  dx_analyzer *an = NULL;
  dx_errbuf oerr = {{0}};
  dx_status ost = dx_backend_open(b->device, &be, &oerr);
  if (ost == DX_OK) ost = dx_analyzer_cached(be, b->ap, &an, &oerr);
  for (size_t i; (i = atomic_fetch_add(&b->next, 1)) < b->files->n;) {
    item *it = &b->items[i];
    if (ost != DX_OK) {
      it->st = ost;
      it->err = oerr;
      continue;
    }
    it->device = be->name;
    it->st = dx_analyzer_run_file(an, b->files->v[i].path, b->mask, NULL, NULL, &it->r, &it->err);
  }
  dx_backend_close(be); /* frees the analyzer too */
  return NULL;
}

static void usage(FILE *f) {
  fprintf(f, "usage: demix analyze FILE|DIR... [--json] [--features tempo,key,energy,spectral,mfcc,chroma,loudness|all]"
             " [--device cpu|cuda|auto] [-j N]\n");
}

int dx_cmd_analyze(int argc, char **argv) {
  int json = 0, jobs = 1;
  const char *features = "all", *device = NULL;
  dx_cli_inputs files = {0};
  int rc = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--json"))
      json = 1;
    else if (!strncmp(a, "-j", 2) && (a[2] || i + 1 < argc)) {
      const char *v = a[2] ? a + 2 : argv[++i];
      char *end;
      long j = strtol(v, &end, 10);
      if (*end || j < 1 || j > 256) {
        dx_cli_error("-j takes a number of workers (1-256)");
        return 2;
      }
      jobs = (int)j;
    } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      usage(stdout);
      return 0;
    } else if (!strncmp(a, "--features", 10) || !strncmp(a, "--device", 8)) {
      const char *name = a[2] == 'f' ? "--features" : "--device";
      const char *v = NULL;
      size_t nl = strlen(name);
      if (a[nl] == '=')
        v = a + nl + 1;
      else if (a[nl] == 0 && i + 1 < argc)
        v = argv[++i];
      if (!v || (a[nl] != 0 && a[nl] != '=')) {
        usage(stderr);
        return 2;
      }
      if (a[2] == 'f')
        features = v;
      else
        device = v;
    } else if (a[0] == '-' && a[1]) {
      dx_cli_error("unknown option '%s'", a);
      usage(stderr);
      return 2;
    } else if (dx_cli_inputs_add(&files, a) != 0) {
      dx_cli_inputs_free(&files);
      return 1;
    }
  }
  if (files.unreadable) rc = 1;
  int many = files.n != 1 || files.folders;
  if (!files.n && !rc) {
    dx_cli_error("no audio files given");
    usage(stderr);
    return 2;
  }
  unsigned mask = 0;
  dx_errbuf err = {{0}};
  if (dx_analysis_features_parse(features, &mask, &err) != DX_OK) {
    dx_cli_error("%s", err.msg);
    return 2;
  }
  dx_config cfg;
  if (dx_cli_config(&cfg)) return 1;
  if (!device) device = cfg.device[0] ? cfg.device : "auto";

  if ((size_t)jobs > files.n) jobs = files.n ? (int)files.n : 1;
  dx_analysis_params ap;
  dx_analysis_default_params(&ap);
  ap.max_seconds = cfg.max_track_seconds;
  ap.threads = jobs == 1 && sysconf(_SC_NPROCESSORS_ONLN) >= 2 ? 2 : 1;
  batch b = {.files = &files, .device = device, .mask = mask, .ap = &ap};
  b.items = calloc(files.n ? files.n : 1, sizeof *b.items);
  pthread_t th[256];
  int started = 0;
  if (!b.items) {
    dx_cli_error("out of memory");
    rc = 1;
  } else {
    for (int t = 1; t < jobs; t++)
      if (pthread_create(&th[started], NULL, batch_worker, &b) == 0) started++;
    batch_worker(&b); /* this thread is a worker too */
    for (int t = 0; t < started; t++) pthread_join(th[t], NULL);
  }
  json_object *arr = json && many ? json_object_new_array() : NULL;
  for (size_t i = 0; b.items && i < files.n; i++) {
    item *it = &b.items[i];
    dx_analysis_result *rp = &it->r;
    dx_status st = it->st;
    dx_errbuf *ep = &it->err;
    if (json) {
      json_object *o;
      if (st == DX_OK) {
        o = dx_analysis_result_json(rp);
        json_object_object_add(o, "file", json_object_new_string(files.v[i].path));
      } else {
        o = json_object_new_object();
        json_object_object_add(o, "file", json_object_new_string(files.v[i].path));
        json_object *eo = json_object_new_object();
        json_object_object_add(eo, "code", json_object_new_string(dx_status_name(st)));
        json_object_object_add(eo, "message", json_object_new_string(ep->msg[0] ? ep->msg : dx_strerror(st)));
        json_object_object_add(o, "error", eo);
      }
      if (arr)
        json_object_array_add(arr, o);
      else {
        printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(o);
      }
    } else if (st == DX_OK) {
      print_human(files.v[i].path, rp, it->device);
    } else {
      dx_cli_error("%s: %s%s%s", files.v[i].path, dx_strerror(st), ep->msg[0] ? ": " : "", ep->msg);
    }
    if (st != DX_OK) rc = 1;
    dx_analysis_result_free(rp);
  }
  if (arr) {
    printf("%s\n", json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(arr);
  }
  free(b.items);
  dx_cli_inputs_free(&files);
  return rc;
}
