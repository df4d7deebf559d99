/* cmd_analyze.c: `demix analyze FILE|DIR... [--json|--jsonl|--csv]
 * [--features a,b] [--device cpu|cuda|auto] [-j N]`: analyse audio files
 * locally, no server or database needed. A folder stands for its audio
 * files at any depth (by extension, each folder's in name order:
 * dx_cli_inputs_add). Prints a readable summary per file; --json one JSON
 * document (the result object, with "file", for a single file argument,
 * else an array of them); --jsonl one compact object per line; --csv a
 * header and a row per file of the scalar features (the means of MFCC and
 * chroma; empty cells for groups not asked for). A file that fails is
 * {"file", "error": {"code", "message"}} in JSON and a row with only file
 * and error in CSV. Results are printed in argument order as soon as they
 * and every one before them are done, and then freed: a run over a
 * library shows its progress and holds few results. Exit status 1 when any
 * file failed, 2 for usage errors. -j N analyses N files at a time on N
 * worker threads, each with its own backend and analyzer; with one worker
 * the loudness runs on a second thread beside the features when the host
 * has two cores or more. */
#include <json-c/json.h>
#include <math.h>
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
    printf("  tempo      %.1f BPM (confidence %.2f), %zu beats, %.2f onsets/s, danceability %.2f\n", r->tempo,
           r->tempo_confidence, r->n_beats, r->onset_rate, r->danceability);
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
  int done;           /* under batch.out_lock */
} item;

typedef enum { OUT_TEXT, OUT_JSON, OUT_JSONL, OUT_CSV } out_mode;

typedef struct {
  const dx_cli_inputs *files;
  const char *device;
  unsigned mask;
  const dx_analysis_params *ap;
  item *items;
  atomic_size_t next;
  out_mode mode;
  int many;               /* --json prints an array */
  pthread_mutex_t out_lock;
  size_t next_out;        /* the first item not printed yet */
  int failed;
} batch;

/* A CSV cell (RFC 4180): quoted when it holds a comma, quote or line break. */
static void csv_text(const char *s) {
  if (!strpbrk(s, ",\"\r\n")) {
    fputs(s, stdout);
    return;
  }
  putchar('"');
  for (; *s; s++) {
    if (*s == '"') putchar('"');
    putchar(*s);
  }
  putchar('"');
}

static void csv_num(int have, double v) {
  putchar(',');
  if (have && isfinite(v)) printf("%.9g", v);
}

static void csv_header(int n_mfcc) {
  static const char *const pc[12] = {"C", "Cs", "D", "Ds", "E", "F", "Fs", "G", "Gs", "A", "As", "B"};
  printf("file,error,duration,sample_rate,channels,tempo,tempo_confidence,beat_count,onset_rate,danceability,key,"
         "camelot,key_confidence,energy,rms_mean,rms_std,integrated_lufs,loudness_range,true_peak_dbtp,spectral_centroid,"
         "spectral_bandwidth,spectral_rolloff,spectral_flatness,zero_crossing_rate");
  for (int i = 1; i <= n_mfcc; i++) printf(",mfcc%d", i);
  for (int i = 0; i < 12; i++) printf(",chroma_%s", pc[i]);
  putchar('\n');
}

static void csv_row(const char *file, const dx_analysis_result *r, const char *error, int n_mfcc) {
  csv_text(file);
  putchar(',');
  if (error) {
    csv_text(error);
    putchar('\n');
    return;
  }
  unsigned f = r->features;
  csv_num(1, r->duration);
  csv_num(1, r->sample_rate);
  csv_num(1, r->channels);
  int t = (f & DX_AF_TEMPO) != 0, k = (f & DX_AF_KEY) != 0, e = (f & DX_AF_ENERGY) != 0;
  int l = (f & DX_AF_LOUDNESS) != 0, sp = (f & DX_AF_SPECTRAL) != 0;
  csv_num(t, r->tempo);
  csv_num(t, r->tempo_confidence);
  csv_num(t, (double)r->n_beats);
  csv_num(t, r->onset_rate);
  csv_num(t, r->danceability);
  putchar(',');
  if (k) csv_text(r->key);
  putchar(',');
  if (k) csv_text(r->camelot);
  csv_num(k, r->key_confidence);
  csv_num(e, r->energy);
  csv_num(e, r->rms.mean);
  csv_num(e, r->rms.std);
  csv_num(l, r->lufs);
  csv_num(l, r->lra);
  csv_num(l, r->true_peak_db);
  csv_num(sp, r->centroid.mean);
  csv_num(sp, r->bandwidth.mean);
  csv_num(sp, r->rolloff.mean);
  csv_num(sp, r->flatness.mean);
  csv_num(sp, r->zcr.mean);
  for (int i = 0; i < n_mfcc; i++) csv_num((f & DX_AF_MFCC) && i < r->n_mfcc, i < r->n_mfcc ? r->mfcc[i].mean : 0);
  for (int i = 0; i < 12; i++) csv_num((f & DX_AF_CHROMA) != 0, r->chroma[i]);
  putchar('\n');
}

/* Print item i in the chosen form and free its result. */
static void emit(batch *b, size_t i) {
  item *it = &b->items[i];
  const char *file = b->files->v[i].path;
  const char *msg = it->st == DX_OK ? NULL : it->err.msg[0] ? it->err.msg : dx_strerror(it->st);
  if (b->mode == OUT_TEXT) {
    if (it->st == DX_OK) print_human(file, &it->r, it->device);
    else dx_cli_error("%s: %s%s%s", file, dx_strerror(it->st), it->err.msg[0] ? ": " : "", it->err.msg);
  } else if (b->mode == OUT_CSV) {
    csv_row(file, &it->r, msg, b->ap->feat.n_mfcc);
  } else {
    json_object *o;
    if (it->st == DX_OK) {
      o = dx_analysis_result_json(&it->r);
    } else {
      o = json_object_new_object();
      json_object *eo = json_object_new_object();
      json_object_object_add(eo, "code", json_object_new_string(dx_status_name(it->st)));
      json_object_object_add(eo, "message", json_object_new_string(msg));
      json_object_object_add(o, "error", eo);
    }
    json_object_object_add(o, "file", json_object_new_string(file));
    if (b->mode == OUT_JSONL) {
      printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    } else {
      const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
      if (b->many) printf("%s%s", i ? ",\n" : "", text);
      else printf("%s\n", text);
    }
    json_object_put(o);
  }
  fflush(stdout);
  if (it->st != DX_OK) b->failed = 1;
  dx_analysis_result_free(&it->r);
}

/* Item i is done: print it and every done one after it whose turn came. */
static void finished(batch *b, size_t i) {
  pthread_mutex_lock(&b->out_lock);
  b->items[i].done = 1;
  for (; b->next_out < b->files->n && b->items[b->next_out].done; b->next_out++) emit(b, b->next_out);
  pthread_mutex_unlock(&b->out_lock);
}

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
    } else {
      it->device = be->name;
      it->st = dx_analyzer_run_file(an, b->files->v[i].path, b->mask, NULL, NULL, &it->r, &it->err);
    }
    finished(b, i);
  }
  dx_backend_close(be); /* frees the analyzer too */
  return NULL;
}

static void usage(FILE *f) {
  fprintf(f, "usage: demix analyze FILE|DIR... [--json|--jsonl|--csv]"
             " [--features tempo,key,energy,spectral,mfcc,chroma,loudness|all] [--device cpu|cuda|auto] [-j N]\n");
}

/* Leave the command with rc, freeing the inputs gathered so far. */
static int quit(dx_cli_inputs *files, int rc) {
  dx_cli_inputs_free(files);
  return rc;
}

int dx_cmd_analyze(int argc, char **argv) {
  out_mode mode = OUT_TEXT;
  int jobs = 1;
  const char *features = "all", *device = NULL;
  dx_cli_inputs files = {0};
  int rc = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--json") || !strcmp(a, "--jsonl") || !strcmp(a, "--csv")) {
      out_mode m = a[2] == 'c' ? OUT_CSV : a[6] == 'l' ? OUT_JSONL : OUT_JSON;
      if (mode != OUT_TEXT && mode != m) {
        dx_cli_error("--json, --jsonl and --csv exclude each other");
        return quit(&files, 2);
      }
      mode = m;
    } else if (!strncmp(a, "-j", 2) && (a[2] || i + 1 < argc)) {
      const char *v = a[2] ? a + 2 : argv[++i];
      char *end;
      long j = strtol(v, &end, 10);
      if (*end || j < 1 || j > 256) {
        dx_cli_error("-j takes a number of workers (1-256)");
        return quit(&files, 2);
      }
      jobs = (int)j;
    } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      usage(stdout);
      return quit(&files, 0);
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
        return quit(&files, 2);
      }
      if (a[2] == 'f')
        features = v;
      else
        device = v;
    } else if (a[0] == '-' && a[1]) {
      dx_cli_error("unknown option '%s'", a);
      usage(stderr);
      return quit(&files, 2);
    } else if (dx_cli_inputs_add(&files, a) != 0) {
      return quit(&files, 1);
    }
  }
  if (files.unreadable) rc = 1;
  int many = files.n != 1 || files.folders;
  if (!files.n && !rc) {
    dx_cli_error("no audio files given");
    usage(stderr);
    return quit(&files, 2);
  }
  unsigned mask = 0;
  dx_errbuf err = {{0}};
  if (dx_analysis_features_parse(features, &mask, &err) != DX_OK) {
    dx_cli_error("%s", err.msg);
    return quit(&files, 2);
  }
  dx_config cfg;
  if (dx_cli_config(&cfg)) return quit(&files, 1);
  if (!device) device = cfg.device[0] ? cfg.device : "auto";

  if ((size_t)jobs > files.n) jobs = files.n ? (int)files.n : 1;
  dx_analysis_params ap;
  dx_analysis_default_params(&ap);
  ap.max_seconds = cfg.max_track_seconds;
  ap.threads = jobs == 1 && sysconf(_SC_NPROCESSORS_ONLN) >= 2 ? 2 : 1;
  batch b = {.files = &files, .device = device, .mask = mask, .ap = &ap, .mode = mode, .many = many};
  pthread_mutex_init(&b.out_lock, NULL);
  b.items = calloc(files.n ? files.n : 1, sizeof *b.items);
  pthread_t th[256];
  int started = 0;
  if (!b.items) {
    dx_cli_error("out of memory");
    rc = 1;
  } else {
    if (mode == OUT_CSV) csv_header(ap.feat.n_mfcc);
    if (mode == OUT_JSON && many) printf("[\n");
    for (int t = 1; t < jobs; t++)
      if (pthread_create(&th[started], NULL, batch_worker, &b) == 0) started++;
    batch_worker(&b); /* this thread is a worker too */
    for (int t = 0; t < started; t++) pthread_join(th[t], NULL);
    if (mode == OUT_JSON && many) printf("%s]\n", files.n ? "\n" : "");
    if (b.failed) rc = 1;
  }
  pthread_mutex_destroy(&b.out_lock);
  free(b.items);
  dx_cli_inputs_free(&files);
  return rc;
}
