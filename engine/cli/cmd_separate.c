/* cmd_separate.c: `demix separate`: split tracks into stems with a named
 * model, with the official demucs command line's flags where they make sense.
 * Writes OUT/MODEL/TRACK/STEM.EXT; a track whose stems all exist is skipped
 * unless --overwrite. Progress bar on stderr when it is a terminal. Tracks
 * are streamed (dx_separator_run_file): memory does not grow with length.
 * Single-threaded apart from the -j chunk workers inside dx_separator_run_file. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dx_cli.h"
#include "dx_model.h"
#include "dx_separate.h"
#include "dx_util.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: demix separate [OPTIONS] TRACK|DIR...\n"
          "  -n, --name MODEL     model name (default htdemucs; `demix models list`)\n"
          "      --repo DIR       folder of checkpoints instead of the model folder; a .th there is a model by its stem\n"
          "  -o, --out DIR        output folder (default separated); stems go to OUT/MODEL/TRACK/STEM.wav\n"
          "      --two-stems STEM only STEM and no_STEM (= the mix minus STEM)\n"
          "      --other-method minus|add  how no_STEM is made (default minus; add sums the other stems)\n"
          "      --shifts N       random shifts averaged (default 1; 0 = none)\n"
          "      --overlap F      overlap between segments (default 0.25)\n"
          "      --segment S      segment length in seconds (default: the model's)\n"
          "      --seed N         seed of the shift offsets (default 0): the same seed repeats a run exactly;\n"
          "                       offsets equal Python's random.seed(N); random.randint(0, 22050)\n"
          "      --int24 | --float32   24-bit or float WAV (default 16-bit PCM)\n"
          "      --flac | --mp3   FLAC or MP3 instead of WAV\n"
          "  -d, --device cpu|cuda|auto  compute device (default: configuration, else auto)\n"
          "  -j, --jobs N         chunks run at once (default 1)\n"
          "      --overwrite      separate tracks whose stems already exist\n");
}

typedef struct {
  const char *name, *repo, *out, *two, *device;
  int shifts, jobs, int24, float32, flac, mp3, overwrite, other_add;
  double overlap, segment;
  unsigned long long seed;
} opts;

static int parse_num(const char *s, double lo, double hi, double *v) {
  char *end;
  errno = 0;
  double d = strtod(s, &end);
  if (errno || end == s || *end || !(d >= lo && d <= hi)) return -1;
  *v = d;
  return 0;
}

static int parse_args(int argc, char **argv, opts *o, char ***tracks, int *n_tracks) {
  *tracks = calloc((size_t)argc, sizeof **tracks);
  *n_tracks = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *val = NULL;
    char key[32] = "";
    if (a[0] == '-' && a[1]) {
      const char *eq = strchr(a, '=');
      size_t kl = eq ? (size_t)(eq - a) : strlen(a);
      if (kl >= sizeof key) kl = sizeof key - 1;
      memcpy(key, a, kl);
      key[kl] = 0;
      if (eq) val = eq + 1;
    } else {
      (*tracks)[(*n_tracks)++] = argv[i];
      continue;
    }
    int flag = 1;
    if (!strcmp(key, "--int24")) o->int24 = 1;
    else if (!strcmp(key, "--float32")) o->float32 = 1;
    else if (!strcmp(key, "--flac")) o->flac = 1;
    else if (!strcmp(key, "--mp3")) o->mp3 = 1;
    else if (!strcmp(key, "--overwrite")) o->overwrite = 1;
    else if (!strcmp(key, "-h") || !strcmp(key, "--help")) return 1;
    else flag = 0;
    if (flag) continue;
    if (!val) {
      if (i + 1 >= argc) {
        dx_cli_error("option %s needs a value", key);
        return 2;
      }
      val = argv[++i];
    }
    double d;
    if (!strcmp(key, "-n") || !strcmp(key, "--name")) o->name = val;
    else if (!strcmp(key, "--repo")) o->repo = val;
    else if (!strcmp(key, "-o") || !strcmp(key, "--out")) o->out = val;
    else if (!strcmp(key, "--two-stems")) o->two = val;
    else if (!strcmp(key, "-d") || !strcmp(key, "--device")) o->device = val;
    else if (!strcmp(key, "--other-method")) {
      if (strcmp(val, "add") && strcmp(val, "minus")) {
        dx_cli_error("--other-method is add or minus");
        return 2;
      }
      o->other_add = !strcmp(val, "add");
    } else if (!strcmp(key, "--shifts") && !parse_num(val, 0, 100, &d) && d == (int)d) o->shifts = (int)d;
    else if ((!strcmp(key, "-j") || !strcmp(key, "--jobs")) && !parse_num(val, 0, 64, &d) && d == (int)d)
      o->jobs = d < 1 ? 1 : (int)d;
    else if (!strcmp(key, "--overlap") && !parse_num(val, 0, 0.99, &d)) o->overlap = d;
    else if (!strcmp(key, "--segment") && !parse_num(val, 0.1, 3600, &d)) o->segment = d;
    else if (!strcmp(key, "--seed") && !parse_num(val, 0, 1.8e19, &d)) o->seed = strtoull(val, NULL, 10);
    else {
      dx_cli_error("bad option or value: %s %s", key, val);
      return 2;
    }
  }
  if (o->int24 + o->float32 > 1 || o->flac + o->mp3 > 1) {
    dx_cli_error("--int24/--float32 and --flac/--mp3 each exclude each other");
    return 2;
  }
  if (o->device && strcmp(o->device, "cpu") && strcmp(o->device, "cuda") && strcmp(o->device, "auto")) {
    dx_cli_error("--device is cpu, cuda or auto");
    return 2;
  }
  return 0;
}

static int is_audio_name(const char *n) {
  static const char *ext[] = {".wav", ".flac", ".mp3", ".ogg", ".oga", ".aiff", ".aif", ".wave", ".opus"};
  size_t l = strlen(n);
  for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++) {
    size_t e = strlen(ext[i]);
    if (l > e && !strcasecmp(n + l - e, ext[i])) return 1;
  }
  return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Expand directories (their audio files, sorted) into a list of paths. */
static char **expand_tracks(char **in, int n, int *n_out) {
  int cap = n + 16, cnt = 0;
  char **v = malloc((size_t)cap * sizeof *v);
  for (int i = 0; i < n; i++) {
    struct stat sb;
    if (stat(in[i], &sb) == 0 && S_ISDIR(sb.st_mode)) {
      DIR *d = opendir(in[i]);
      if (!d) continue;
      int first = cnt;
      struct dirent *de;
      while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' || !is_audio_name(de->d_name)) continue;
        if (cnt == cap) v = realloc(v, (size_t)(cap *= 2) * sizeof *v);
        size_t l = strlen(in[i]) + strlen(de->d_name) + 2;
        v[cnt] = malloc(l);
        snprintf(v[cnt++], l, "%s/%s", in[i], de->d_name);
      }
      closedir(d);
      qsort(v + first, (size_t)(cnt - first), sizeof *v, cmp_str);
    } else {
      if (cnt == cap) v = realloc(v, (size_t)(cap *= 2) * sizeof *v);
      v[cnt++] = strdup(in[i]);
    }
  }
  *n_out = cnt;
  return v;
}

typedef struct {
  int tty;
  const char *label;
  double t0;
  int last_pct;
} bar;

static int on_progress(void *user, size_t done, size_t total) {
  bar *b = user;
  int pct = total ? (int)(100.0 * (double)done / (double)total) : 0;
  if (!b->tty || pct == b->last_pct) return 0;
  b->last_pct = pct;
  char cells[31];
  int fill = pct * 30 / 100;
  for (int i = 0; i < 30; i++) cells[i] = i < fill ? '#' : '.';
  cells[30] = 0;
  fprintf(stderr, "\r  %-28.28s [%s] %3d%%  %zu/%zu  %.1f s", b->label, cells, pct, done, total, dx_now() - b->t0);
  fflush(stderr);
  return 0;
}

static const char *base_name(const char *p) {
  const char *s = strrchr(p, '/');
  return s ? s + 1 : p;
}

int dx_cmd_separate(int argc, char **argv) {
  opts o = {"htdemucs", NULL, "separated", NULL, NULL, 1, 1, 0, 0, 0, 0, 0, 0, 0.25, 0, 0};
  char **raw = NULL, **tracks = NULL;
  int n_raw = 0, n_tracks = 0, rc = parse_args(argc, argv, &o, &raw, &n_raw);
  if (rc == 1) {
    usage(stdout);
    free(raw);
    return 0;
  }
  if (rc || n_raw == 0) {
    if (!rc) dx_cli_error("no tracks given");
    usage(stderr);
    free(raw);
    return 2;
  }
  dx_config cfg;
  if (dx_cli_config(&cfg)) {
    free(raw);
    return 1;
  }
  const char *model_dir = o.repo ? o.repo : cfg.model_dir;
  const char *device = o.device ? o.device : (*cfg.device ? cfg.device : "auto");
  dx_errbuf err = {{0}};
  dx_separator *sep = NULL;
  dx_status st = dx_separator_load(model_dir, o.name, &sep, &err);
  if (st != DX_OK) {
    dx_cli_error("%s", *err.msg ? err.msg : dx_strerror(st));
    free(raw);
    return 1;
  }
  dx_backend *bes[64] = {0};
  if (dx_separator_entry(sep)->kind == DX_REG_HPSS && o.device && !strcmp(o.device, "cuda"))
    fprintf(stderr, "%s is computed on the CPU (median filtering, no network): --device %s is not used\n",
            dx_separator_entry(sep)->name, o.device);
  if (dx_separator_entry(sep)->kind != DX_REG_HPSS)
    for (int i = 0; i < o.jobs; i++)
      if ((st = dx_backend_open(device, &bes[i], &err)) != DX_OK) {
        dx_cli_error("device %s: %s", device, *err.msg ? err.msg : dx_strerror(st));
        for (int j = 0; j < i; j++) dx_backend_close(bes[j]);
        dx_separator_free(sep);
        free(raw);
        return 1;
      }

  dx_audio_encoding enc = o.mp3 ? DX_ENC_MP3
                          : o.flac ? (o.int24 ? DX_ENC_FLAC24 : DX_ENC_FLAC)
                          : o.float32 ? DX_ENC_WAV_FLOAT
                          : o.int24 ? DX_ENC_WAV_PCM24
                                    : DX_ENC_WAV_PCM16;
  dx_separate_params p = dx_separate_default_params();
  p.shifts = o.shifts;
  p.overlap = o.overlap;
  p.segment = o.segment;
  p.seed = o.seed;
  p.jobs = o.jobs;
  p.two_stems = o.two;
  p.other_add = o.other_add;
  bar b = {isatty(2), NULL, 0, -1};
  p.progress = on_progress;
  p.progress_user = &b;

  /* the stem names, to know whether a track is done already */
  char names[DX_STEMS_MAX][40];
  int n_names = 0;
  if (o.two) {
    snprintf(names[0], sizeof names[0], "%s", o.two);
    snprintf(names[1], sizeof names[1], "no_%s", o.two);
    n_names = 2;
  } else {
    for (int k = 0; k < dx_separator_n_sources(sep); k++)
      snprintf(names[n_names++], sizeof names[0], "%s", dx_separator_source(sep, k));
  }

  tracks = expand_tracks(raw, n_raw, &n_tracks);
  int failures = 0;
  fprintf(stderr, "Separated tracks will be stored in %s/%s\n", o.out, o.name);
  for (int t = 0; t < n_tracks; t++) {
    char stem_name[512], dir[2048];
    snprintf(stem_name, sizeof stem_name, "%s", base_name(tracks[t]));
    char *dot = strrchr(stem_name, '.');
    if (dot && dot != stem_name) *dot = 0;
    snprintf(dir, sizeof dir, "%s/%s/%s", o.out, o.name, stem_name);
    if (!o.overwrite) {
      int all = 1;
      for (int k = 0; k < n_names && all; k++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s.%s", dir, names[k], dx_audio_encoding_ext(enc));
        all = access(path, F_OK) == 0;
      }
      if (all) {
        fprintf(stderr, "Skipping %s: its stems exist (use --overwrite)\n", tracks[t]);
        continue;
      }
    }
    fprintf(stderr, "Separating track %s\n", tracks[t]);
    b.label = base_name(tracks[t]);
    b.t0 = dx_now();
    b.last_pct = -1;
    dx_stems info = {0};
    /* streamed: the track is read and its stems written block by block */
    st = dx_separator_run_file(sep, bes, tracks[t], 0, &p, dir, enc, &info, NULL, &err);
    if (b.tty) fputc('\n', stderr);
    if (st != DX_OK) {
      dx_cli_error("%s: %s", tracks[t], *err.msg ? err.msg : dx_strerror(st));
      failures++;
      continue;
    }
    fprintf(stderr, "  %.1f s of audio\n", (double)info.frames / info.samplerate);
    fprintf(stderr, "  %d stems in %s (%.1f s)\n", n_names, dir, dx_now() - b.t0);
  }
  for (int i = 0; i < n_tracks; i++) free(tracks[i]);
  free(tracks);
  free(raw);
  for (int i = 0; i < o.jobs; i++) dx_backend_close(bes[i]);
  dx_separator_free(sep);
  if (dx_model_profile_enabled()) dx_model_profile_report(stderr);
  return failures ? 1 : 0;
}
