/* separate.c: whole-track separation with a named model (see dx_separate.h):
 * loading bags of checkpoints, converting audio, running the long-track
 * procedure or hpss, two-stem output, writing stems, and a small cache of
 * warm models. dx_separator_run_file streams a file to stem files in
 * bounded memory; dx_separator_run works on a track in memory.
 * Threading: separators are read-only after loading; the cache is guarded by
 * cache_lock (loading happens under it, so two workers asking for the same
 * model load it once). */
#include "dx_separate.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dx_apply.h"
#include "dx_hpss.h"
#include "dx_model.h"
#include "dx_util.h"

struct dx_separator {
  dx_registry_entry e;
  char dir[1024];
  int n_models;
  dx_model *models[DX_REGISTRY_MAX_FILES];
  int n_sources, channels, samplerate;
  char sources[DX_STEMS_MAX][32];
  /* cache bookkeeping (under cache_lock) */
  char stamp[256];
  int refs, cached;
};

dx_separate_params dx_separate_default_params(void) {
  dx_separate_params p;
  memset(&p, 0, sizeof p);
  p.shifts = 1;
  p.overlap = 0.25;
  p.jobs = 1;
  return p;
}

void dx_stems_free(dx_stems *st) {
  if (!st) return;
  free(st->data);
  memset(st, 0, sizeof *st);
}

const dx_registry_entry *dx_separator_entry(const dx_separator *s) { return &s->e; }
int dx_separator_n_sources(const dx_separator *s) { return s->n_sources; }
const char *dx_separator_source(const dx_separator *s, int i) {
  return i >= 0 && i < s->n_sources ? s->sources[i] : NULL;
}
int dx_separator_samplerate(const dx_separator *s) { return s->samplerate; }
int dx_separator_channels(const dx_separator *s) { return s->channels; }

double dx_separator_max_segment(const dx_separator *s) {
  double mx = 0;
  for (int i = 0; i < s->n_models; i++) {
    const dx_model_info *in = dx_model_get_info(s->models[i]);
    if (in->klass == DX_MODEL_HTDEMUCS && (mx == 0 || in->segment < mx)) mx = in->segment;
  }
  return mx;
}

void dx_separator_free(dx_separator *s) {
  if (!s) return;
  for (int i = 0; i < s->n_models; i++) dx_model_free(s->models[i]);
  free(s);
}

dx_status dx_separator_load(const char *model_dir, const char *name, dx_separator **out, dx_errbuf *err) {
  *out = NULL;
  dx_separator *s = calloc(1, sizeof *s);
  if (!s) return DX_ERR_NOMEM;
  snprintf(s->dir, sizeof s->dir, "%s", model_dir);
  dx_status st = dx_registry_find(model_dir, name, &s->e, err);
  if (st != DX_OK) {
    free(s);
    return st;
  }
  if (s->e.kind == DX_REG_HPSS) {
    s->n_sources = 2;
    s->channels = 2;
    s->samplerate = 44100;
    snprintf(s->sources[0], sizeof s->sources[0], "harmonic");
    snprintf(s->sources[1], sizeof s->sources[1], "percussive");
    *out = s;
    return DX_OK;
  }
  if (!s->e.installed) {
    char hint[128];
    dx_registry_fetch_hint(name, hint, sizeof hint);
    free(s);
    return dx_fail(err, DX_ERR_MODEL_NOT_INSTALLED, "model %s is not installed; fetch it with: %s", name, hint);
  }
  for (int i = 0; i < s->e.n_files; i++) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", model_dir, s->e.files[i]);
    dx_errbuf e2 = {{0}};
    st = dx_model_load(path, &s->models[i], &e2);
    if (st != DX_OK) {
      dx_fail(err, st, "cannot load %s of model %s: %s", s->e.files[i], name, *e2.msg ? e2.msg : dx_strerror(st));
      dx_separator_free(s);
      return st;
    }
    s->n_models = i + 1;
    const dx_model_info *in = dx_model_get_info(s->models[i]);
    if (i == 0) {
      s->n_sources = in->n_sources;
      s->channels = in->audio_channels;
      s->samplerate = in->samplerate;
      for (int k = 0; k < in->n_sources && k < DX_STEMS_MAX; k++)
        snprintf(s->sources[k], sizeof s->sources[k], "%s", in->sources[k]);
    } else {
      int same = in->n_sources == s->n_sources && in->audio_channels == s->channels && in->samplerate == s->samplerate;
      for (int k = 0; same && k < in->n_sources; k++) same = !strcmp(in->sources[k], s->sources[k]);
      if (!same) {
        dx_separator_free(s);
        return dx_fail(err, DX_ERR_MODEL, "the checkpoints of %s disagree on sources, channels or rate", name);
      }
    }
  }
  if (s->n_sources < 1 || s->n_sources > DX_STEMS_MAX || s->channels < 1 || s->samplerate < 1) {
    dx_separator_free(s);
    return dx_fail(err, DX_ERR_MODEL, "model %s has an unusable shape", name);
  }
  /* the registry's source list (used before loading) follows the checkpoint */
  s->e.n_sources = s->n_sources;
  for (int k = 0; k < s->n_sources; k++) snprintf(s->e.sources[k], sizeof s->e.sources[k], "%s", s->sources[k]);
  *out = s;
  return DX_OK;
}

dx_status dx_separator_convert(const dx_separator *s, dx_audio *a, dx_errbuf *err) {
  dx_status st;
  if (a->samplerate != s->samplerate) {
    dx_audio r = {0};
    if ((st = dx_audio_resample(a, s->samplerate, &r, err)) != DX_OK) return st;
    dx_audio_free(a);
    *a = r;
  }
  if (a->channels != s->channels) {
    dx_audio r = {0};
    if ((st = dx_audio_remix(a, s->channels, &r)) != DX_OK) return dx_fail(err, st, "cannot convert channels");
    dx_audio_free(a);
    *a = r;
  }
  return DX_OK;
}

/* ---- the dx_model adapter for dx_apply ---- */

typedef struct {
  dx_model *m;
  dx_backend *const *backends;
} fwd_user;

static size_t fwd_valid(void *user, size_t length) { return dx_model_valid_length(((fwd_user *)user)->m, length); }

static dx_status fwd_run(void *user, int worker, const float *in, size_t length, float *out, dx_errbuf *err) {
  fwd_user *u = user;
  return dx_model_forward(u->m, u->backends[worker], in, length, out, err);
}

/* The bag as dx_apply sees it: am, users and weights are filled for
 * s->n_models models; ap from p. */
static void bag_setup(const dx_separator *s, dx_backend *const *backends, const dx_separate_params *p,
                      dx_apply_model *am, fwd_user *users, float *weights, dx_apply_params *ap) {
  for (int i = 0; i < s->n_models; i++) {
    const dx_model_info *in = dx_model_get_info(s->models[i]);
    users[i] = (fwd_user){s->models[i], backends};
    double seg = in->segment;
    /* a bag's segment raises the segment of its non-transformer models (BagOfModels) */
    if (in->klass != DX_MODEL_HTDEMUCS && s->e.segment > seg) seg = s->e.segment;
    am[i] = (dx_apply_model){in->n_sources, in->audio_channels, in->samplerate, seg,
                             in->klass == DX_MODEL_HTDEMUCS, fwd_valid, fwd_run, &users[i]};
    for (int k = 0; k < s->n_sources; k++)
      weights[i * s->n_sources + k] = s->e.has_weights ? s->e.weights[i][k] : 1.0f;
  }
  *ap = dx_apply_default_params();
  ap->shifts = p->shifts;
  ap->overlap = p->overlap;
  ap->segment = p->segment;
  ap->seed = p->seed;
  ap->jobs = p->jobs;
  ap->progress = p->progress;
  ap->progress_user = p->progress_user;
}

static dx_status run_models(const dx_separator *s, dx_backend *const *backends, const dx_audio *a,
                            const dx_separate_params *p, float *out, dx_errbuf *err) {
  dx_apply_model am[DX_REGISTRY_MAX_FILES];
  fwd_user users[DX_REGISTRY_MAX_FILES];
  float weights[DX_REGISTRY_MAX_FILES * DX_STEMS_MAX];
  dx_apply_params ap;
  bag_setup(s, backends, p, am, users, weights, &ap);
  return dx_apply_run(am, s->n_models, weights, a->data, a->frames, &ap, out, err);
}

/* Check params against s; *two gets the two-stems source (-1: every source). */
static dx_status check_params(const dx_separator *s, dx_backend *const *backends, const dx_separate_params *p, int *two,
                              dx_errbuf *err) {
  *two = -1;
  if (p->two_stems && *p->two_stems) {
    for (int k = 0; k < s->n_sources; k++)
      if (!strcmp(s->sources[k], p->two_stems)) *two = k;
    if (*two < 0) {
      char list[256] = "";
      for (int k = 0; k < s->n_sources; k++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", k ? ", " : "", s->sources[k]);
      return dx_fail(err, DX_ERR_INVALID, "stem \"%s\" is not in model %s; it must be one of %s", p->two_stems,
                     s->e.name, list);
    }
  }
  double mx = s->e.kind == DX_REG_HPSS ? 0 : dx_separator_max_segment(s);
  if (p->segment > 0 && mx > 0 && p->segment > mx + 1e-9)
    return dx_fail(err, DX_ERR_INVALID, "cannot use a transformer model with a segment longer than it was trained "
                                        "for: the most is %.2f s", mx);
  if (p->jobs < 1 || (s->e.kind != DX_REG_HPSS && !backends))
    return dx_fail(err, DX_ERR_INVALID, "no backend to run on");
  return DX_OK;
}

dx_status dx_separator_run(const dx_separator *s, dx_backend *const *backends, const dx_audio *a,
                           const dx_separate_params *p, dx_stems *out, dx_errbuf *err) {
  memset(out, 0, sizeof *out);
  int two;
  dx_status st0 = check_params(s, backends, p, &two, err);
  if (st0 != DX_OK) return st0;
  dx_audio conv = {0};
  const dx_audio *in = a;
  dx_status st;
  if (a->samplerate != s->samplerate || a->channels != s->channels) {
    conv.data = malloc((size_t)a->channels * a->frames * sizeof *conv.data);
    if (!conv.data) return DX_ERR_NOMEM;
    memcpy(conv.data, a->data, (size_t)a->channels * a->frames * sizeof *conv.data);
    conv.channels = a->channels;
    conv.samplerate = a->samplerate;
    conv.frames = a->frames;
    if ((st = dx_separator_convert(s, &conv, err)) != DX_OK) {
      dx_audio_free(&conv);
      return st;
    }
    in = &conv;
  }
  size_t L = in->frames, CL = (size_t)s->channels * L;
  int S = s->n_sources;
  float *data = malloc((size_t)S * CL * sizeof *data);
  if (!data) {
    dx_audio_free(&conv);
    return dx_fail(err, DX_ERR_NOMEM, "out of memory for %d stems of %zu samples", S, L);
  }
  if (s->e.kind == DX_REG_HPSS) {
    dx_hpss_params hp = dx_hpss_default_params();
    hp.progress = p->progress;
    hp.progress_user = p->progress_user;
    st = dx_hpss_run(in->data, s->channels, L, &hp, data, err);
  } else {
    st = run_models(s, backends, in, p, data, err);
  }
  if (st != DX_OK) {
    free(data);
    dx_audio_free(&conv);
    return st;
  }
  out->channels = s->channels;
  out->samplerate = s->samplerate;
  out->frames = L;
  if (two < 0) {
    out->n = S;
    for (int k = 0; k < S; k++) snprintf(out->names[k], sizeof out->names[k], "%s", s->sources[k]);
  } else {
    /* STEM into slot 0, no_STEM into slot 1, computed in place: the rest
     * goes into slot r (1, or 0 when STEM is in slot 1), then slots move */
    int r = two == 1 ? 0 : 1;
    float *stem = data + (size_t)two * CL, *rest = data + (size_t)r * CL;
    if (p->other_add) {
      for (int k = 0; k < S; k++) {
        if (k == two || k == r) continue;
        const float *o = data + (size_t)k * CL;
        for (size_t i = 0; i < CL; i++) rest[i] += o[i];
      }
    } else {
      for (size_t i = 0; i < CL; i++) rest[i] = in->data[i] - stem[i];
    }
    if (two == 1) {
      for (size_t i = 0; i < CL; i++) {
        float t = data[i];
        data[i] = data[CL + i];
        data[CL + i] = t;
      }
    } else if (two >= 2) {
      memcpy(data, stem, CL * sizeof *data);
    }
    float *shrunk = realloc(data, 2 * CL * sizeof *data);
    if (shrunk) data = shrunk;
    out->n = 2;
    snprintf(out->names[0], sizeof out->names[0], "%s", p->two_stems);
    snprintf(out->names[1], sizeof out->names[1], "no_%s", p->two_stems);
  }
  out->data = data;
  dx_audio_free(&conv);
  return DX_OK;
}

dx_status dx_stems_write(dx_stems *st, const char *dir, dx_audio_encoding enc, char (*paths)[1024], dx_errbuf *err) {
  dx_status rc = dx_mkdirs(dir);
  if (rc != DX_OK) return dx_fail(err, rc, "cannot create %s", dir);
  size_t CL = (size_t)st->channels * st->frames;
  for (int k = 0; k < st->n; k++) {
    float *x = st->data + (size_t)k * CL;
    float peak = 0;
    for (size_t i = 0; i < CL; i++) peak = fmaxf(peak, fabsf(x[i]));
    if (1.01f * peak > 1.0f) {
      float g = 1.0f / (1.01f * peak);
      for (size_t i = 0; i < CL; i++) x[i] *= g;
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.%s", dir, st->names[k], dx_audio_encoding_ext(enc));
    if ((rc = dx_audio_write(path, x, st->channels, st->frames, st->samplerate, enc, err)) != DX_OK) return rc;
    if (paths) snprintf(paths[k], 1024, "%s", path);
  }
  return DX_OK;
}

/* ---- file to files, streamed ---- */

typedef struct {
  const dx_separator *s;
  dx_audio_reader *rd;
  int n_out, two, other_add;
  dx_audio_writer *w[DX_STEMS_MAX];
  float *tmp; /* [2][C][n]: the mix, then no_STEM (two stems only) */
  size_t tmp_cap;
} file_sink;

static dx_status sink_read(void *user, size_t offset, size_t n, float *dst, size_t stride, dx_errbuf *err) {
  return dx_audio_reader_read(((file_sink *)user)->rd, offset, n, dst, stride, err);
}

static dx_status sink_write(void *user, size_t offset, size_t n, const float *src, dx_errbuf *err) {
  file_sink *fs = user;
  const size_t C = (size_t)fs->s->channels, CN = C * n;
  dx_status st;
  if (fs->two < 0) {
    for (int k = 0; k < fs->n_out; k++)
      if ((st = dx_audio_writer_write(fs->w[k], src + (size_t)k * CN, n, n, err)) != DX_OK) return st;
    return DX_OK;
  }
  if (fs->tmp_cap < 2 * CN) {
    float *t = realloc(fs->tmp, 2 * CN * sizeof *t);
    if (!t) return DX_ERR_NOMEM;
    fs->tmp = t;
    fs->tmp_cap = 2 * CN;
  }
  const float *stem = src + (size_t)fs->two * CN;
  float *rest = fs->tmp + CN;
  int r = fs->two == 1 ? 0 : 1;
  if (fs->other_add) { /* the same sums, in the same order, as dx_separator_run */
    memcpy(rest, src + (size_t)r * CN, CN * sizeof *rest);
    for (int k = 0; k < fs->s->n_sources; k++) {
      if (k == fs->two || k == r) continue;
      const float *o = src + (size_t)k * CN;
      for (size_t i = 0; i < CN; i++) rest[i] += o[i];
    }
  } else {
    if ((st = dx_audio_reader_read(fs->rd, offset, n, fs->tmp, n, err)) != DX_OK) return st;
    for (size_t i = 0; i < CN; i++) rest[i] = fs->tmp[i] - stem[i];
  }
  if ((st = dx_audio_writer_write(fs->w[0], stem, n, n, err)) != DX_OK) return st;
  return dx_audio_writer_write(fs->w[1], rest, n, n, err);
}

typedef struct {
  dx_audio_writer *w;
  dx_status st;
  dx_errbuf err;
} closing;

static void *close_one(void *arg) {
  closing *c = arg;
  c->st = dx_audio_writer_close(c->w, &c->err);
  return NULL;
}

/* Close (finish and rename into place) every stem file, side by side: with
 * the rescale clip mode each is encoded only now, and an MP3 or FLAC stem's
 * encoding takes seconds of one core. w[k] is NULL afterwards; closed[k]
 * says which made it. The first failure's status and message. */
static dx_status close_writers(dx_audio_writer **w, int n, int *closed, dx_errbuf *err) {
  closing c[DX_STEMS_MAX];
  for (int k = 0; k < n; k++) {
    c[k] = (closing){w[k], DX_OK, {{0}}};
    w[k] = NULL;
  }
  dx_run_side_by_side(close_one, c, sizeof *c, n);
  dx_status st = DX_OK;
  for (int k = 0; k < n; k++) {
    closed[k] = c[k].st == DX_OK;
    if (st == DX_OK && c[k].st != DX_OK) {
      st = c[k].st;
      *err = c[k].err;
    }
  }
  return st;
}

dx_status dx_separator_run_file(const dx_separator *s, dx_backend *const *backends, const char *in_path,
                                double max_seconds, const dx_separate_params *p, const char *dir,
                                dx_audio_encoding enc, dx_stems *info, char (*paths)[1024], dx_errbuf *err) {
  memset(info, 0, sizeof *info);
  file_sink fs;
  memset(&fs, 0, sizeof fs);
  fs.s = s;
  fs.other_add = p->other_add;
  dx_status st = check_params(s, backends, p, &fs.two, err);
  if (st != DX_OK) return st;
  if ((st = dx_mkdirs(dir)) != DX_OK) return dx_fail(err, st, "cannot create %s", dir);
  if ((st = dx_audio_reader_open(in_path, max_seconds, s->samplerate, s->channels, dir, &fs.rd, err)) != DX_OK) {
    rmdir(dir); /* only when it is empty: nothing of ours is left */
    return st;
  }
  size_t L = dx_audio_reader_frames(fs.rd);
  info->channels = s->channels;
  info->samplerate = s->samplerate;
  info->frames = L;
  if (fs.two < 0) {
    info->n = s->n_sources;
    for (int k = 0; k < s->n_sources; k++) snprintf(info->names[k], sizeof info->names[k], "%s", s->sources[k]);
  } else {
    info->n = 2;
    snprintf(info->names[0], sizeof info->names[0], "%s", p->two_stems);
    snprintf(info->names[1], sizeof info->names[1], "no_%s", p->two_stems);
  }
  fs.n_out = info->n;
  char path[DX_STEMS_MAX][1024];
  for (int k = 0; k < fs.n_out && st == DX_OK; k++) {
    snprintf(path[k], sizeof path[k], "%s/%s.%s", dir, info->names[k], dx_audio_encoding_ext(enc));
    static const int clip_flag[] = {DX_WRITER_RESCALE, DX_WRITER_CLAMP, DX_WRITER_TANH, 0};
    int flags = (unsigned)p->clip < sizeof clip_flag / sizeof clip_flag[0] ? clip_flag[p->clip] : DX_WRITER_RESCALE;
    st = dx_audio_writer_open(path[k], s->channels, s->samplerate, enc, flags, &fs.w[k], err);
    if (st == DX_OK && p->mp3_kbps) st = dx_audio_writer_set_mp3_kbps(fs.w[k], p->mp3_kbps, err);
  }
  dx_apply_io io = {L, sink_read, &fs, sink_write, &fs};
  if (st == DX_OK) {
    if (s->e.kind == DX_REG_HPSS) {
      dx_hpss_params hp = dx_hpss_default_params();
      hp.progress = p->progress;
      hp.progress_user = p->progress_user;
      st = dx_hpss_stream(s->channels, &io, &hp, err);
    } else {
      dx_apply_model am[DX_REGISTRY_MAX_FILES];
      fwd_user users[DX_REGISTRY_MAX_FILES];
      float weights[DX_REGISTRY_MAX_FILES * DX_STEMS_MAX];
      dx_apply_params ap;
      bag_setup(s, backends, p, am, users, weights, &ap);
      st = dx_apply_stream(am, s->n_models, weights, &io, &ap, err);
    }
  }
  dx_audio_reader_close(fs.rd);
  free(fs.tmp);
  int closed[DX_STEMS_MAX] = {0};
  if (st == DX_OK) st = close_writers(fs.w, fs.n_out, closed, err);
  if (st != DX_OK) {
    for (int k = 0; k < fs.n_out; k++) dx_audio_writer_abort(fs.w[k]);
    for (int k = 0; k < fs.n_out; k++)
      if (closed[k]) unlink(path[k]); /* no partial set of stems */
    rmdir(dir);
    memset(info, 0, sizeof *info);
    return st;
  }
  if (paths)
    for (int k = 0; k < fs.n_out; k++) snprintf(paths[k], 1024, "%s", path[k]);
  return DX_OK;
}

/* ---- cache ---- */

#define CACHE_SIZE 2

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static dx_separator *cache[CACHE_SIZE];
static unsigned long long cache_used[CACHE_SIZE], cache_clock;

/* name, folder and every file's mtime and size: a replaced file reloads */
static void make_stamp(const char *dir, const char *name, char *out, size_t n) {
  dx_registry_entry e;
  int w = snprintf(out, n, "%s|%s", dir, name);
  if (dx_registry_find(dir, name, &e, NULL) != DX_OK) return;
  for (int i = 0; i < e.n_files && w > 0 && (size_t)w < n; i++) {
    char path[1200];
    struct stat sb;
    snprintf(path, sizeof path, "%s/%s", dir, e.files[i]);
    if (stat(path, &sb) == 0)
      w += snprintf(out + w, n - (size_t)w, "|%lld.%09ld:%lld", (long long)sb.st_mtim.tv_sec, (long)sb.st_mtim.tv_nsec,
                    (long long)sb.st_size);
  }
}

dx_status dx_separator_acquire(const char *model_dir, const char *name, dx_separator **out, dx_errbuf *err) {
  char stamp[256];
  make_stamp(model_dir, name, stamp, sizeof stamp);
  pthread_mutex_lock(&cache_lock);
  for (int i = 0; i < CACHE_SIZE; i++)
    if (cache[i] && !strcmp(cache[i]->stamp, stamp)) {
      cache[i]->refs++;
      cache_used[i] = ++cache_clock;
      *out = cache[i];
      pthread_mutex_unlock(&cache_lock);
      return DX_OK;
    }
  dx_separator *s = NULL;
  dx_status st = dx_separator_load(model_dir, name, &s, err);
  if (st != DX_OK) {
    pthread_mutex_unlock(&cache_lock);
    *out = NULL;
    return st;
  }
  snprintf(s->stamp, sizeof s->stamp, "%s", stamp);
  s->refs = 1;
  int slot = 0;
  for (int i = 0; i < CACHE_SIZE; i++) {
    if (!cache[i]) {
      slot = i;
      break;
    }
    if (cache_used[i] < cache_used[slot]) slot = i;
  }
  if (cache[slot]) {
    cache[slot]->cached = 0;
    if (cache[slot]->refs == 0) dx_separator_free(cache[slot]);
  }
  cache[slot] = s;
  s->cached = 1;
  cache_used[slot] = ++cache_clock;
  *out = s;
  pthread_mutex_unlock(&cache_lock);
  return DX_OK;
}

void dx_separator_release(dx_separator *s) {
  if (!s) return;
  pthread_mutex_lock(&cache_lock);
  s->refs--;
  int drop = s->refs <= 0 && !s->cached;
  pthread_mutex_unlock(&cache_lock);
  if (drop) dx_separator_free(s);
}

void dx_separator_cache_clear(void) {
  pthread_mutex_lock(&cache_lock);
  for (int i = 0; i < CACHE_SIZE; i++)
    if (cache[i]) {
      cache[i]->cached = 0;
      if (cache[i]->refs <= 0) dx_separator_free(cache[i]);
      cache[i] = NULL;
    }
  pthread_mutex_unlock(&cache_lock);
}
