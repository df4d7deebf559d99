/* cmd_analyze.c: `demix analyze FILE|DIR... [--json] [--features a,b]
 * [--device cpu|cuda|auto]`: analyse audio files locally, no server or
 * database needed. A directory stands for every audio file directly in it
 * (by extension, sorted by name). Prints a readable summary per file, or
 * with --json one JSON document: the result object (with "file") for a
 * single file argument, else an array of them; a file that fails appears
 * as {"file", "error": {"code", "message"}}. Exit status 1 when any file
 * failed, 2 for usage errors. Single-threaded: one backend, one analyzer. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "dx_analysis.h"
#include "dx_cli.h"
#include "dx_util.h"

static const char *const audio_ext[] = {"wav", "flac", "ogg", "oga", "mp3", "aif", "aiff", "wave", NULL};

static int is_audio_name(const char *name) {
  const char *dot = strrchr(name, '.');
  if (!dot || name[0] == '.') return 0;
  for (int i = 0; audio_ext[i]; i++)
    if (!strcasecmp(dot + 1, audio_ext[i])) return 1;
  return 0;
}

typedef struct {
  char **v;
  size_t n, cap;
} path_list;

static int paths_add(path_list *l, const char *p) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? 2 * l->cap : 16;
    char **v = realloc(l->v, cap * sizeof *v);
    if (!v) return -1;
    l->v = v;
    l->cap = cap;
  }
  if (!(l->v[l->n] = strdup(p))) return -1;
  l->n++;
  return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int paths_add_dir(path_list *l, const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return -1;
  size_t first = l->n;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (!is_audio_name(e->d_name)) continue;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode) && paths_add(l, path) != 0) {
      closedir(d);
      return -1;
    }
  }
  closedir(d);
  qsort(l->v + first, l->n - first, sizeof *l->v, cmp_str);
  return 0;
}

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

static void usage(FILE *f) {
  fprintf(f, "usage: demix analyze FILE|DIR... [--json] [--features tempo,key,energy,spectral,mfcc,chroma,loudness|all]"
             " [--device cpu|cuda|auto]\n");
}

int dx_cmd_analyze(int argc, char **argv) {
  int json = 0;
  const char *features = "all", *device = NULL;
  path_list files = {0};
  int rc = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--json"))
      json = 1;
    else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
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
    } else {
      struct stat sb;
      if (stat(a, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        if (paths_add_dir(&files, a) != 0) {
          dx_cli_error("cannot read directory %s", a);
          rc = 1;
        }
      } else if (paths_add(&files, a) != 0)
        return 1;
    }
  }
  int many = files.n != 1;
  for (int i = 1; i < argc; i++) {
    struct stat sb;
    if (argv[i][0] != '-' && stat(argv[i], &sb) == 0 && S_ISDIR(sb.st_mode)) many = 1;
  }
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

  dx_backend *be = NULL;
  dx_analyzer *an = NULL;
  dx_analysis_params ap;
  dx_analysis_default_params(&ap);
  ap.max_seconds = cfg.max_track_seconds;
  dx_status st = dx_backend_open(device, &be, &err);
  if (st == DX_OK) st = dx_analyzer_open(be, &ap, &an, &err);
  if (st != DX_OK) {
    dx_cli_error("%s: %s", dx_strerror(st), err.msg);
    dx_backend_close(be);
    for (size_t i = 0; i < files.n; i++) free(files.v[i]);
    free(files.v);
    return 1;
  }
  json_object *arr = json && many ? json_object_new_array() : NULL;
  for (size_t i = 0; i < files.n; i++) {
    dx_analysis_result r;
    dx_errbuf e = {{0}};
    st = dx_analyzer_run_file(an, files.v[i], mask, NULL, NULL, &r, &e);
    if (json) {
      json_object *o;
      if (st == DX_OK) {
        o = dx_analysis_result_json(&r);
        json_object_object_add(o, "file", json_object_new_string(files.v[i]));
      } else {
        o = json_object_new_object();
        json_object_object_add(o, "file", json_object_new_string(files.v[i]));
        json_object *eo = json_object_new_object();
        json_object_object_add(eo, "code", json_object_new_string(dx_status_name(st)));
        json_object_object_add(eo, "message", json_object_new_string(e.msg[0] ? e.msg : dx_strerror(st)));
        json_object_object_add(o, "error", eo);
      }
      if (arr)
        json_object_array_add(arr, o);
      else {
        printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(o);
      }
    } else if (st == DX_OK) {
      print_human(files.v[i], &r, be->name);
    } else {
      dx_cli_error("%s: %s%s%s", files.v[i], dx_strerror(st), e.msg[0] ? ": " : "", e.msg);
    }
    if (st != DX_OK) rc = 1;
    dx_analysis_result_free(&r);
  }
  if (arr) {
    printf("%s\n", json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(arr);
  }
  dx_analyzer_close(an);
  dx_backend_close(be);
  for (size_t i = 0; i < files.n; i++) free(files.v[i]);
  free(files.v);
  return rc;
}
