/* cmd_separate.c: `demix separate`: split tracks into stems with a named
 * model, with the official demucs command line's flags where they make sense.
 * Writes OUT/MODEL/TRACK/STEM.EXT (OUT/MODEL/SUB/TRACK/STEM.EXT for a track
 * found in folder SUB of a folder argument); a track whose stems all exist
 * is skipped unless --overwrite, and two tracks that would share a stem
 * folder stop the run before it starts. Progress bar on stderr when it is
 * a terminal. Tracks are streamed (dx_separator_run_file): memory does not grow with length.
 * Single-threaded apart from the -j chunk workers inside dx_separator_run_file. */
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
          "usage: demix separate [OPTIONS] TRACK|DIR...   (a DIR: its audio files at any depth)\n"
          "  -n, --name MODEL     model name (default htdemucs; `demix models list`)\n"
          "      --repo DIR       folder of checkpoints instead of the model folder; a .th there is a model by its stem\n"
          "  -o, --out DIR        output folder (default separated); stems go to OUT/MODEL/TRACK/STEM.wav,\n"
          "                       OUT/MODEL/SUB/TRACK/STEM.wav for a track in folder SUB of a DIR argument\n"
          "      --two-stems STEM only STEM and no_STEM (= the mix minus STEM)\n"
          "      --other-method minus|add  how no_STEM is made (default minus; add sums the other stems)\n"
          "      --shifts N       random shifts averaged (default 1; 0 = none)\n"
          "      --overlap F      overlap between segments (default 0.25)\n"
          "      --segment S      segment length in seconds (default: the model's)\n"
          "      --seed N         seed of the shift offsets (default 0): the same seed repeats a run exactly;\n"
          "                       offsets equal Python's random.seed(N); random.randint(0, 22050)\n"
          "      --int24 | --float32   24-bit or float WAV (default 16-bit PCM)\n"
          "      --flac | --mp3   FLAC or MP3 instead of WAV\n"
          "      --mp3-bitrate K  MP3 bit rate in kbps, constant (default 320)\n"
          "      --clip-mode rescale|clamp|tanh|none  how stems avoid clipping (default rescale: a stem\n"
          "                       peaking over 1/1.01 is scaled down whole; clamp: to +-0.99)\n"
          "  -d, --device cpu|cuda|auto  compute device (default: configuration, else auto)\n"
          "  -j, --jobs N         chunks run at once (default 1)\n"
          "      --overwrite      separate tracks whose stems already exist\n");
}

typedef struct {
  const char *name, *repo, *out, *two, *device;
  int shifts, jobs, int24, float32, flac, mp3, mp3_kbps, overwrite, other_add, clip;
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
    } else if (!strcmp(key, "--clip-mode")) {
      static const char *const modes[] = {"rescale", "clamp", "tanh", "none"}; /* dx_clip_mode's order */
      o->clip = -1;
      for (int m = 0; m < 4; m++)
        if (!strcmp(val, modes[m])) o->clip = m;
      if (o->clip < 0) {
        dx_cli_error("--clip-mode is rescale, clamp, tanh or none");
        return 2;
      }
    } else if (!strcmp(key, "--shifts") && !parse_num(val, 0, 100, &d) && d == (int)d) o->shifts = (int)d;
    else if ((!strcmp(key, "-j") || !strcmp(key, "--jobs")) && !parse_num(val, 0, 64, &d) && d == (int)d)
      o->jobs = d < 1 ? 1 : (int)d;
    else if (!strcmp(key, "--mp3-bitrate") && !parse_num(val, 8, 320, &d) && d == (int)d) o->mp3_kbps = (int)d;
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
  if (o->mp3_kbps && !o->mp3) {
    dx_cli_error("--mp3-bitrate is for --mp3");
    return 2;
  }
  if (o->device && strcmp(o->device, "cpu") && strcmp(o->device, "cuda") && strcmp(o->device, "auto")) {
    dx_cli_error("--device is cpu, cuda or auto");
    return 2;
  }
  return 0;
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

/* Each input's stem folder: OUT/MODEL/REL/TRACK, TRACK its file name
 * without the extension, REL the folders below the folder argument it came
 * from, so a library's layout is kept. NULL when out of memory (said). */
static char **out_dirs(const dx_cli_inputs *in, const char *out, const char *model) {
  char **dirs = calloc(in->n ? in->n : 1, sizeof *dirs);
  for (size_t t = 0; dirs && t < in->n; t++) {
    const char *name = base_name(in->v[t].path), *dot = strrchr(name, '.');
    int len = dot && dot != name ? (int)(dot - name) : (int)strlen(name);
    const char *rel = in->v[t].rel;
    size_t n = strlen(out) + strlen(model) + strlen(rel) + (size_t)len + 4;
    if (!(dirs[t] = malloc(n))) {
      while (t) free(dirs[--t]);
      free(dirs);
      dirs = NULL;
      break;
    }
    snprintf(dirs[t], n, "%s/%s/%s%s%.*s", out, model, rel, *rel ? "/" : "", len, name);
  }
  if (!dirs) dx_cli_error("out of memory");
  return dirs;
}

static int cmp_dir(const void *a, const void *b, void *dirs) {
  return strcmp(((char **)dirs)[*(const size_t *)a], ((char **)dirs)[*(const size_t *)b]);
}

/* Two inputs whose stems would land in one folder (mix.wav and mix.flac,
 * or the same name given twice) would overwrite each other, or the second
 * would be skipped as done: refuse the run before any work. 2 (said), or
 * 0. */
static int clashing_out_dirs(const dx_cli_inputs *in, char **dirs) {
  size_t *ix = malloc((in->n ? in->n : 1) * sizeof *ix);
  if (!ix) {
    dx_cli_error("out of memory");
    return 1;
  }
  for (size_t i = 0; i < in->n; i++) ix[i] = i;
  qsort_r(ix, in->n, sizeof *ix, cmp_dir, dirs);
  int rc = 0;
  for (size_t i = 1; i < in->n && !rc; i++)
    if (!strcmp(dirs[ix[i - 1]], dirs[ix[i]])) {
      size_t a = ix[i - 1] < ix[i] ? ix[i - 1] : ix[i], b = ix[i - 1] < ix[i] ? ix[i] : ix[i - 1];
      dx_cli_error("%s and %s would both be separated into %s: rename one, or separate them in two runs"
                   " with different --out folders",
                   in->v[a].path, in->v[b].path, dirs[a]);
      rc = 2;
    }
  free(ix);
  return rc;
}

int dx_cmd_separate(int argc, char **argv) {
  opts o = {.name = "htdemucs", .out = "separated", .shifts = 1, .jobs = 1, .overlap = 0.25};
  char **raw = NULL;
  int n_raw = 0, rc = parse_args(argc, argv, &o, &raw, &n_raw);
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
  p.mp3_kbps = o.mp3_kbps;
  p.clip = (dx_clip_mode)o.clip;
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

  dx_cli_inputs in = {0};
  char **dirs = NULL;
  int failures = 0;
  /* stems from earlier runs are not tracks: a walk over a folder that
   * holds OUT (or, for -o ., OUT/MODEL) leaves them out */
  char model_out[4200];
  snprintf(model_out, sizeof model_out, "%s/%s", o.out, o.name);
  dx_cli_inputs_skip(&in, o.out);
  dx_cli_inputs_skip(&in, model_out);
  for (int i = 0; i < n_raw && !rc; i++) rc = dx_cli_inputs_add(&in, raw[i]);
  if (!rc && !(dirs = out_dirs(&in, o.out, o.name))) rc = 1;
  if (rc) failures = 1;
  else if (in.unreadable) failures++;
  if (!rc && !in.n) {
    dx_cli_error("no audio files found in the folders given");
    rc = 2;
  }
  if (!rc) rc = clashing_out_dirs(&in, dirs);
  if (!rc) fprintf(stderr, "Separated tracks will be stored in %s/%s\n", o.out, o.name);
  for (size_t t = 0; !rc && t < in.n; t++) {
    const char *track = in.v[t].path, *dir = dirs[t];
    if (!o.overwrite) {
      int all = 1;
      for (int k = 0; k < n_names && all; k++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s.%s", dir, names[k], dx_audio_encoding_ext(enc));
        all = access(path, F_OK) == 0;
      }
      if (all) {
        fprintf(stderr, "Skipping %s: its stems exist (use --overwrite)\n", track);
        continue;
      }
    }
    fprintf(stderr, "Separating track %s\n", track);
    b.label = base_name(track);
    b.t0 = dx_now();
    b.last_pct = -1;
    dx_stems info = {0};
    /* streamed: the track is read and its stems written block by block */
    st = dx_separator_run_file(sep, bes, track, 0, &p, dir, enc, &info, NULL, &err);
    if (b.tty) fputc('\n', stderr);
    if (st != DX_OK) {
      dx_cli_error("%s: %s", track, *err.msg ? err.msg : dx_strerror(st));
      failures++;
      continue;
    }
    fprintf(stderr, "  %.1f s of audio\n", (double)info.frames / info.samplerate);
    fprintf(stderr, "  %d stems in %s (%.1f s)\n", n_names, dir, dx_now() - b.t0);
  }
  for (size_t i = 0; dirs && i < in.n; i++) free(dirs[i]);
  free(dirs);
  dx_cli_inputs_free(&in);
  free(raw);
  for (int i = 0; i < o.jobs; i++) dx_backend_close(bes[i]);
  dx_separator_free(sep);
  if (dx_model_profile_enabled()) dx_model_profile_report(stderr);
  return rc ? rc : failures ? 1 : 0;
}
