/* cmd_separate.c: `demix separate`: split tracks into stems with a named
 * model, with the official demucs command line's flags where they make sense.
 * Writes OUT/MODEL/TRACK/STEM.EXT (OUT/MODEL/SUB/TRACK/STEM.EXT for a track
 * found in folder SUB of a folder argument; --filename changes the part
 * after SUB, as the official flag does); a track whose stems all exist is
 * skipped unless --overwrite, and two tracks that would write one stem file
 * stop the run before it starts. Progress bar on stderr when it is
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
          "      --filename PATTERN  stem file below OUT/MODEL (and SUB) from {track}, {trackext}, {stem}\n"
          "                       and {ext} (default {track}/{stem}.{ext}; {stem} is required)\n"
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
  const char *name, *repo, *out, *two, *device, *filename;
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
    else if (!strcmp(key, "--filename")) o->filename = val;
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

#define DEFAULT_FILENAME "{track}/{stem}.{ext}"

/* PATTERN with {track}, {trackext}, {stem} and {ext} replaced (and {{ }}
 * as single braces, as Python's str.format, which the official flag uses)
 * into out (size n). -1 for an unknown or unclosed field or a result too
 * long. */
static int expand(const char *pattern, const char *track, const char *trackext, const char *stem,
                  const char *ext, char *out, size_t n) {
  size_t k = 0;
  for (const char *p = pattern; *p;) {
    const char *add = NULL;
    size_t len = 1;
    if ((p[0] == '{' && p[1] == '{') || (p[0] == '}' && p[1] == '}')) {
      add = p;
      p += 2;
    } else if (p[0] == '{') {
      const char *e = strchr(p, '}');
      if (!e) return -1;
      size_t fl = (size_t)(e - p - 1);
      static const char *const names[4] = {"track", "trackext", "stem", "ext"};
      const char *vals[4] = {track, trackext, stem, ext};
      for (int f = 0; f < 4 && !add; f++)
        if (strlen(names[f]) == fl && !strncmp(p + 1, names[f], fl)) add = vals[f];
      if (!add) return -1;
      len = strlen(add);
      p = e + 1;
    } else if (p[0] == '}') {
      return -1;
    } else {
      add = p++;
    }
    if (k + len >= n) return -1;
    memcpy(out + k, add, len);
    k += len;
  }
  out[k] = 0;
  return 0;
}

/* A --filename pattern that names one file per stem below OUT/MODEL: its
 * fields known, {stem} in it, not absolute, no "." or ".." folder in it.
 * 0, or 2 (said). */
static int check_filename(const char *pattern) {
  char a[1024], b[1024];
  if (expand(pattern, "t", "wav", "s1", "wav", a, sizeof a) || expand(pattern, "t", "wav", "s2", "wav", b, sizeof b)) {
    dx_cli_error("--filename %s: the fields are {track}, {trackext}, {stem} and {ext}", pattern);
    return 2;
  }
  if (!strcmp(a, b)) {
    dx_cli_error("--filename %s: without {stem}, every stem would go to the same file", pattern);
    return 2;
  }
  if (a[0] == '/' || a[strlen(a) - 1] == '/') {
    dx_cli_error("--filename %s: a file name below OUT/MODEL, not a folder or an absolute path", pattern);
    return 2;
  }
  for (const char *seg = a; seg && *seg; seg = strchr(seg, '/') ? strchr(seg, '/') + 1 : NULL) {
    size_t l = strcspn(seg, "/");
    if (l == 0 || (l == 1 && seg[0] == '.') || (l == 2 && seg[0] == '.' && seg[1] == '.')) {
      dx_cli_error("--filename %s: no empty, \".\" or \"..\" folder names", pattern);
      return 2;
    }
  }
  return 0;
}

/* Each input's stem files, paths[t * n_names + k] for stem names[k]:
 * OUT/MODEL/REL/PATTERN, REL the folders below the folder argument the
 * track came from (a library's layout is kept), PATTERN expanded with the
 * track's file name. NULL when out of memory or a path is too long (said). */
static char **stem_paths(const dx_cli_inputs *in, const opts *o, char (*names)[40], int n_names, const char *ext) {
  size_t total = in->n * (size_t)n_names;
  char **paths = calloc(total ? total : 1, sizeof *paths);
  for (size_t t = 0; paths && t < in->n; t++) {
    const char *name = base_name(in->v[t].path), *dot = strrchr(name, '.');
    char track[1024], sub[1024];
    int len = dot && dot != name ? (int)(dot - name) : (int)strlen(name);
    snprintf(track, sizeof track, "%.*s", len, name);
    if (!strcmp(track, ".") || !strcmp(track, "..")) snprintf(track, sizeof track, "%s", name); /* "...wav" */
    const char *trackext = dot && dot != name ? dot + 1 : "";
    for (int k = 0; k < n_names; k++) {
      size_t n = strlen(o->out) + strlen(o->name) + strlen(in->v[t].rel) + 1100;
      char *p = malloc(n);
      int bad = !p || expand(o->filename, track, trackext, names[k], ext, sub, sizeof sub);
      if (!bad) snprintf(p, n, "%s/%s/%s%s%s", o->out, o->name, in->v[t].rel, *in->v[t].rel ? "/" : "", sub);
      paths[t * (size_t)n_names + (size_t)k] = p;
      if (bad) {
        dx_cli_error(p ? "%s: a stem path too long" : "out of memory", in->v[t].path);
        for (size_t i = 0; i < total; i++) free(paths[i]);
        free(paths);
        return NULL;
      }
    }
  }
  if (!paths) dx_cli_error("out of memory");
  return paths;
}

static int cmp_path(const void *a, const void *b, void *paths) {
  return strcmp(((char **)paths)[*(const size_t *)a], ((char **)paths)[*(const size_t *)b]);
}

/* Two inputs that would write the same stem file (mix.wav and mix.flac,
 * the same name given twice, a --filename without {track}) would overwrite
 * each other, or the second would be skipped as done: refuse the run before
 * any work. 2 (said), or 0. */
static int clashing_paths(const dx_cli_inputs *in, char **paths, int n_names) {
  size_t total = in->n * (size_t)n_names;
  size_t *ix = malloc((total ? total : 1) * sizeof *ix);
  if (!ix) {
    dx_cli_error("out of memory");
    return 1;
  }
  for (size_t i = 0; i < total; i++) ix[i] = i;
  qsort_r(ix, total, sizeof *ix, cmp_path, paths);
  int rc = 0;
  for (size_t i = 1; i < total && !rc; i++)
    if (!strcmp(paths[ix[i - 1]], paths[ix[i]])) {
      size_t a = ix[i - 1] < ix[i] ? ix[i - 1] : ix[i], b = ix[i - 1] < ix[i] ? ix[i] : ix[i - 1];
      dx_cli_error("%s and %s would both be separated into %s: rename one, or separate them in two runs"
                   " with different --out folders",
                   in->v[a / (size_t)n_names].path, in->v[b / (size_t)n_names].path, paths[a]);
      rc = 2;
    }
  free(ix);
  return rc;
}

/* The folder of path (a copy), NULL when out of memory. */
static char *parent_of(const char *path) {
  const char *sl = strrchr(path, '/');
  return sl ? strndup(path, (size_t)(sl - path)) : strdup(".");
}

/* Where a track's stems are written: with the default pattern their own
 * folder, else (staged) a hidden staging folder in OUT/MODEL that they
 * leave for their places once all are done (rename: the stems appear whole,
 * and a failed track leaves nothing). */
static char *work_dir(const opts *o, int staged, char **paths, size_t t) {
  if (!staged) return parent_of(paths[0]);
  size_t n = strlen(o->out) + strlen(o->name) + 64;
  char *d = malloc(n);
  if (d) snprintf(d, n, "%s/%s/.demix-stage-%d-%zu", o->out, o->name, (int)getpid(), t);
  return d;
}

/* Move a staged track's stems to their places; the staging folder goes. */
static dx_status place_stems(const char *stage, char **paths, char (*names)[40], int n_names, const char *ext,
                             dx_errbuf *err) {
  dx_status st = DX_OK;
  for (int k = 0; k < n_names; k++) {
    char from[1200];
    snprintf(from, sizeof from, "%s/%s.%s", stage, names[k], ext);
    char *dir = parent_of(paths[k]);
    if (st == DX_OK && (!dir || dx_mkdirs(dir) != DX_OK))
      st = dx_fail(err, DX_ERR_IO, "cannot create %s", dir ? dir : "a folder");
    if (st == DX_OK && rename(from, paths[k]))
      st = dx_fail(err, DX_ERR_IO, "cannot move a stem to %s: %s", paths[k], strerror(errno));
    if (st != DX_OK) unlink(from);
    free(dir);
  }
  rmdir(stage);
  return st;
}

int dx_cmd_separate(int argc, char **argv) {
  opts o = {.name = "htdemucs", .out = "separated", .filename = DEFAULT_FILENAME, .shifts = 1, .jobs = 1, .overlap = 0.25};
  char **raw = NULL;
  int n_raw = 0, rc = parse_args(argc, argv, &o, &raw, &n_raw);
  if (!rc && check_filename(o.filename)) rc = 2;
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
  char **paths = NULL;
  int failures = 0;
  /* stems from earlier runs are not tracks: a walk over a folder that
   * holds OUT (or, for -o ., OUT/MODEL) leaves them out */
  char model_out[4200];
  snprintf(model_out, sizeof model_out, "%s/%s", o.out, o.name);
  dx_cli_inputs_skip(&in, o.out);
  dx_cli_inputs_skip(&in, model_out);
  for (int i = 0; i < n_raw && !rc; i++) rc = dx_cli_inputs_add(&in, raw[i]);
  const char *ext = dx_audio_encoding_ext(enc);
  const int staged = strcmp(o.filename, DEFAULT_FILENAME) != 0; /* --filename: stems moved into place */
  if (!rc && !(paths = stem_paths(&in, &o, names, n_names, ext))) rc = 1;
  if (rc) failures = 1;
  else if (in.unreadable) failures++;
  if (!rc && !in.n) {
    dx_cli_error("no audio files found in the folders given");
    rc = 2;
  }
  if (!rc) rc = clashing_paths(&in, paths, n_names);
  if (!rc) fprintf(stderr, "Separated tracks will be stored in %s/%s\n", o.out, o.name);
  for (size_t t = 0; !rc && t < in.n; t++) {
    const char *track = in.v[t].path;
    char **tp = paths + t * (size_t)n_names;
    if (!o.overwrite) {
      int all = 1;
      for (int k = 0; k < n_names && all; k++) all = access(tp[k], F_OK) == 0;
      if (all) {
        fprintf(stderr, "Skipping %s: its stems exist (use --overwrite)\n", track);
        continue;
      }
    }
    if (in.n > 1) fprintf(stderr, "Separating track %zu/%zu %s\n", t + 1, in.n, track);
    else fprintf(stderr, "Separating track %s\n", track);
    b.label = base_name(track);
    b.t0 = dx_now();
    b.last_pct = -1;
    dx_stems info = {0};
    /* streamed: the track is read and its stems written block by block */
    char *dir = work_dir(&o, staged, tp, t);
    st = dir ? dx_separator_run_file(sep, bes, track, 0, &p, dir, enc, &info, NULL, &err) : DX_ERR_NOMEM;
    if (st == DX_OK && staged) st = place_stems(dir, tp, names, n_names, ext, &err);
    if (b.tty) fputc('\n', stderr);
    if (st != DX_OK) {
      dx_cli_error("%s: %s", track, *err.msg ? err.msg : dx_strerror(st));
      failures++;
      if (dir && staged) rmdir(dir); /* the staging folder, when empty */
      free(dir);
      continue;
    }
    fprintf(stderr, "  %.1f s of audio\n", (double)info.frames / info.samplerate);
    if (!staged)
      fprintf(stderr, "  %d stems in %s (%.1f s)\n", n_names, dir, dx_now() - b.t0);
    else
      fprintf(stderr, "  %d stems: %s ... (%.1f s)\n", n_names, tp[0], dx_now() - b.t0);
    free(dir);
  }
  for (size_t i = 0; paths && i < in.n * (size_t)n_names; i++) free(paths[i]);
  free(paths);
  dx_cli_inputs_free(&in);
  free(raw);
  for (int i = 0; i < o.jobs; i++) dx_backend_close(bes[i]);
  dx_separator_free(sep);
  if (dx_model_profile_enabled()) dx_model_profile_report(stderr);
  return rc ? rc : failures ? 1 : 0;
}
