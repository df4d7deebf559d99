/* apply.c: the long-track procedure (see dx_apply.h): outer normalisation,
 * shifts, split with overlap and triangular blending, bags with per-source
 * weights.
 *
 * Instead of summing weighted chunks and dividing by the summed weights at
 * the end (which needs a track-long weight array per pass), every chunk
 * sample is folded into `out` at once with its final coefficient
 *   bag_w[m][k] / sum_m bag_w[m][k] * 1/shifts * w[j] / wsum(t),
 * where wsum(t), the sum of the triangle weights of the chunks covering t, is
 * known from the chunk geometry alone (with overlap below 1/2 at most two
 * chunks cover any sample). The result equals the official computation up to
 * float rounding.
 *
 * Threading: forwards of one batch run on up to params.jobs threads started
 * here; buffers are per worker; folding and progress happen on the calling
 * thread in chunk order. */
#include "dx_apply.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ---- shift generator: MT19937 as CPython's random module ---- */

#define MT_N 624
#define MT_M 397

static void mt_init(dx_apply_rng *r, uint32_t s) {
  r->mt[0] = s;
  for (int i = 1; i < MT_N; i++) r->mt[i] = 1812433253u * (r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) + (uint32_t)i;
  r->mti = MT_N;
}

void dx_apply_rng_seed(dx_apply_rng *r, uint64_t seed) {
  /* random.seed(int): the integer's 32-bit words, least significant first. */
  uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
  int klen = key[1] ? 2 : 1;
  mt_init(r, 19650218u);
  int i = 1, j = 0;
  for (int k = MT_N > klen ? MT_N : klen; k; k--) {
    r->mt[i] = (r->mt[i] ^ ((r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) * 1664525u)) + key[j] + (uint32_t)j;
    i++;
    j++;
    if (i >= MT_N) {
      r->mt[0] = r->mt[MT_N - 1];
      i = 1;
    }
    if (j >= klen) j = 0;
  }
  for (int k = MT_N - 1; k; k--) {
    r->mt[i] = (r->mt[i] ^ ((r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) * 1566083941u)) - (uint32_t)i;
    i++;
    if (i >= MT_N) {
      r->mt[0] = r->mt[MT_N - 1];
      i = 1;
    }
  }
  r->mt[0] = 0x80000000u;
  r->mti = MT_N;
}

static uint32_t mt_next(dx_apply_rng *r) {
  static const uint32_t mag01[2] = {0u, 0x9908b0dfu};
  if (r->mti >= MT_N) {
    int k;
    uint32_t y;
    for (k = 0; k < MT_N - MT_M; k++) {
      y = (r->mt[k] & 0x80000000u) | (r->mt[k + 1] & 0x7fffffffu);
      r->mt[k] = r->mt[k + MT_M] ^ (y >> 1) ^ mag01[y & 1u];
    }
    for (; k < MT_N - 1; k++) {
      y = (r->mt[k] & 0x80000000u) | (r->mt[k + 1] & 0x7fffffffu);
      r->mt[k] = r->mt[k + (MT_M - MT_N)] ^ (y >> 1) ^ mag01[y & 1u];
    }
    y = (r->mt[MT_N - 1] & 0x80000000u) | (r->mt[0] & 0x7fffffffu);
    r->mt[MT_N - 1] = r->mt[MT_M - 1] ^ (y >> 1) ^ mag01[y & 1u];
    r->mti = 0;
  }
  uint32_t y = r->mt[r->mti++];
  y ^= (y >> 11);
  y ^= (y << 7) & 0x9d2c5680u;
  y ^= (y << 15) & 0xefc60000u;
  y ^= (y >> 18);
  return y;
}

uint32_t dx_apply_rng_randint(dx_apply_rng *r, uint32_t a, uint32_t b) {
  if (b <= a) return a;
  uint64_t n = (uint64_t)b - a + 1;
  if (n > 0xffffffffu) return a + mt_next(r); /* the whole 32-bit range */
  int k = 0;
  while ((n >> k) != 0) k++; /* n.bit_length() */
  uint32_t v;
  do v = mt_next(r) >> (32 - k); /* getrandbits(k), k <= 32 */
  while (v >= n);
  return a + v;
}

/* ---- chunk geometry ---- */

dx_apply_params dx_apply_default_params(void) {
  dx_apply_params p;
  memset(&p, 0, sizeof p);
  p.shifts = 1;
  p.overlap = 0.25;
  p.transition_power = 1.0;
  p.split = 1;
  p.normalize = 1;
  p.jobs = 1;
  return p;
}

typedef struct {
  size_t seg;    /* segment length in samples (the window's length without split) */
  size_t stride; /* distance between chunk starts */
  size_t win;    /* window (shifted track) length */
} geometry;

static size_t seconds_to_samples(double sec, int rate) { return (size_t)floor(sec * rate + 1e-6); }

static dx_status model_geometry(const dx_apply_model *m, const dx_apply_params *p, size_t win, geometry *g,
                                dx_errbuf *err) {
  g->win = win;
  if (!p->split) {
    g->seg = win;
    g->stride = win;
    return DX_OK;
  }
  double sec = p->segment > 0 ? p->segment : m->segment;
  if (!(sec > 0)) return dx_fail(err, DX_ERR_INVALID, "model has no segment length and none was given");
  g->seg = seconds_to_samples(sec, m->samplerate);
  g->stride = (size_t)((1.0 - p->overlap) * (double)g->seg);
  if (g->seg < 2 || g->stride < 1) return dx_fail(err, DX_ERR_INVALID, "segment of %.3f s is too short", sec);
  return DX_OK;
}

static size_t chunks_in(const geometry *g) { return g->win == 0 ? 0 : (g->win - 1) / g->stride + 1; }

/* Triangle weights [1..seg/2, seg-seg/2..1] / max, to the power tp. */
static float *triangle(size_t seg, double tp) {
  float *w = malloc(seg * sizeof *w);
  if (!w) return NULL;
  size_t half = seg / 2;
  double mx = (double)(seg - half);
  for (size_t j = 0; j < seg; j++) {
    double v = (j < half ? (double)(j + 1) : (double)(seg - j)) / mx;
    w[j] = (float)(tp == 1.0 ? v : pow(v, tp));
  }
  return w;
}

/* Sum of the weights of every chunk covering window position t. */
static double weight_sum(const geometry *g, const float *w, size_t t) {
  double s = 0;
  for (size_t k = t / g->stride + 1; k-- > 0;) {
    size_t off = k * g->stride;
    if (t - off >= g->seg) break;
    s += w[t - off];
  }
  return s;
}

/* ---- one run ---- */

typedef struct {
  const dx_apply_model *m;
  int worker;
  const float *in;
  size_t len;
  float *out;
  dx_status st;
  dx_errbuf err;
} fwd_task;

static void *fwd_thread(void *arg) {
  fwd_task *t = arg;
  t->st = t->m->forward(t->m->user, t->worker, t->in, t->len, t->out, &t->err);
  return NULL;
}

typedef struct {
  size_t off, len, run; /* chunk start (window coordinates), its length, the length it runs at */
  float *in, *out;      /* [C][run], [S][C][run] */
  size_t cap;           /* capacity of in/out, in samples per channel */
} chunk_buf;

typedef struct {
  const float *mix;
  size_t length;
  int channels, sources;
  double mean, scale; /* input x -> (x - mean) * scale */
  float *out;
  size_t done, total;
  const dx_apply_params *p;
} run_state;

static dx_status chunk_reserve(chunk_buf *b, size_t run, int channels, int sources) {
  if (run <= b->cap) return DX_OK;
  float *in = realloc(b->in, run * (size_t)channels * sizeof *in);
  if (!in) return DX_ERR_NOMEM;
  b->in = in;
  float *out = realloc(b->out, run * (size_t)channels * (size_t)sources * sizeof *out);
  if (!out) return DX_ERR_NOMEM;
  b->out = out;
  b->cap = run;
  return DX_OK;
}

/* Fill b->in: window position t maps to track sample t - delay; the chunk is
 * padded centred around itself, zeros outside the track. */
static void chunk_fill(const run_state *rs, chunk_buf *b, size_t delay) {
  long long start = (long long)b->off - (long long)((b->run - b->len) / 2) - (long long)delay;
  for (int c = 0; c < rs->channels; c++) {
    const float *src = rs->mix + (size_t)c * rs->length;
    float *dst = b->in + (size_t)c * b->run;
    for (size_t i = 0; i < b->run; i++) {
      long long u = start + (long long)i;
      dst[i] = (u < 0 || u >= (long long)rs->length) ? 0.0f : (float)((src[u] - rs->mean) * rs->scale);
    }
  }
}

static void chunk_fold(run_state *rs, const chunk_buf *b, const geometry *g, const float *w, size_t delay,
                       const double *coef) {
  size_t trim = (b->run - b->len) / 2, L = rs->length;
  for (size_t j = 0; j < b->len; j++) {
    size_t t = b->off + j;
    if (t < delay || t - delay >= L) continue;
    size_t u = t - delay;
    double f = (double)w[j] / weight_sum(g, w, t);
    for (int s = 0; s < rs->sources; s++)
      for (int c = 0; c < rs->channels; c++) {
        const float *y = b->out + ((size_t)s * rs->channels + c) * b->run;
        rs->out[((size_t)s * rs->channels + c) * L + u] += (float)(coef[s] * f) * y[trim + j];
      }
  }
}

/* One pass of one model over the track delayed by `delay` samples. */
static dx_status run_pass(run_state *rs, const dx_apply_model *m, size_t delay, const double *coef,
                          chunk_buf *bufs, int jobs, const float **tri, size_t *tri_len, dx_errbuf *err) {
  const dx_apply_params *p = rs->p;
  geometry g;
  dx_status st = model_geometry(m, p, rs->length + delay, &g, err);
  if (st != DX_OK) return st;
  if (*tri_len != g.seg) {
    free((void *)*tri);
    *tri_len = 0;
    float *w = p->split ? triangle(g.seg, p->transition_power) : malloc(g.seg * sizeof *w);
    *tri = w;
    if (!w) return DX_ERR_NOMEM;
    if (!p->split)
      for (size_t i = 0; i < g.seg; i++) w[i] = 1.0f; /* one chunk: no blending */
    *tri_len = g.seg;
  }
  size_t n = chunks_in(&g);
  for (size_t k0 = 0; k0 < n; k0 += (size_t)jobs) {
    int batch = (int)((n - k0) < (size_t)jobs ? (n - k0) : (size_t)jobs);
    for (int i = 0; i < batch; i++) {
      chunk_buf *b = &bufs[i];
      b->off = (k0 + (size_t)i) * g.stride;
      b->len = g.win - b->off < g.seg ? g.win - b->off : g.seg;
      if (m->fixed_length && p->segment > 0 && p->split)
        b->run = seconds_to_samples(p->segment, m->samplerate);
      else
        b->run = m->valid_length ? m->valid_length(m->user, b->len) : b->len;
      if (b->run < b->len)
        return dx_fail(err, DX_ERR_INVALID, "model cannot run a chunk of %zu samples (at most %zu)", b->len, b->run);
      if (chunk_reserve(b, b->run, rs->channels, rs->sources) != DX_OK) return DX_ERR_NOMEM;
      chunk_fill(rs, b, delay);
    }
    fwd_task tasks[batch];
    pthread_t th[batch];
    int started[batch];
    for (int i = 0; i < batch; i++) {
      tasks[i] = (fwd_task){m, i, bufs[i].in, bufs[i].run, bufs[i].out, DX_OK, {{0}}};
      started[i] = 0;
      if (batch > 1 && i > 0 && pthread_create(&th[i], NULL, fwd_thread, &tasks[i]) == 0) started[i] = 1;
    }
    for (int i = 0; i < batch; i++)
      if (!started[i]) fwd_thread(&tasks[i]);
    for (int i = 0; i < batch; i++)
      if (started[i]) pthread_join(th[i], NULL);
    for (int i = 0; i < batch; i++)
      if (tasks[i].st != DX_OK) {
        if (err) *err = tasks[i].err;
        return tasks[i].st;
      }
    for (int i = 0; i < batch; i++) {
      chunk_fold(rs, &bufs[i], &g, *tri, delay, coef);
      rs->done++;
      if (p->progress && p->progress(p->progress_user, rs->done, rs->total))
        return dx_fail(err, DX_ERR_CANCELLED, "separation cancelled");
    }
  }
  return DX_OK;
}

static dx_status check_args(const dx_apply_model *models, int n_models, const float *weights, const float *mix,
                            size_t length, const dx_apply_params *p, float *out, dx_errbuf *err) {
  if (!models || n_models < 1 || !mix || !out || !p) return dx_fail(err, DX_ERR_INVALID, "missing argument");
  if (length == 0) return dx_fail(err, DX_ERR_EMPTY, "empty track");
  const dx_apply_model *m0 = &models[0];
  if (m0->n_sources < 1 || m0->channels < 1 || m0->samplerate < 1)
    return dx_fail(err, DX_ERR_INVALID, "model has no sources or channels");
  for (int m = 0; m < n_models; m++) {
    if (!models[m].forward) return dx_fail(err, DX_ERR_INVALID, "model %d has no forward function", m);
    if (models[m].n_sources != m0->n_sources || models[m].channels != m0->channels ||
        models[m].samplerate != m0->samplerate)
      return dx_fail(err, DX_ERR_INVALID, "models of a bag must agree on sources, channels and sample rate");
    if (models[m].fixed_length && p->segment > models[m].segment + 1e-9)
      return dx_fail(err, DX_ERR_INVALID, "segment %.2f s is longer than the %.2f s a transformer model allows",
                     p->segment, models[m].segment);
  }
  if (p->shifts < 0 || p->jobs < 1 || p->jobs > 64) return dx_fail(err, DX_ERR_INVALID, "bad shifts or jobs");
  if (!(p->overlap >= 0 && p->overlap < 1)) return dx_fail(err, DX_ERR_INVALID, "overlap must be in [0, 1)");
  if (!(p->transition_power >= 1)) return dx_fail(err, DX_ERR_INVALID, "transition power must be >= 1");
  if (p->segment < 0) return dx_fail(err, DX_ERR_INVALID, "negative segment");
  for (int k = 0; k < m0->n_sources; k++) {
    double s = 0;
    for (int m = 0; m < n_models; m++) {
      double wv = weights ? weights[(size_t)m * m0->n_sources + k] : 1.0;
      if (!(wv >= 0)) return dx_fail(err, DX_ERR_INVALID, "negative bag weight");
      s += wv;
    }
    if (!(s > 0)) return dx_fail(err, DX_ERR_INVALID, "source %d has no model with a positive weight", k);
  }
  return DX_OK;
}

dx_status dx_apply_run(const dx_apply_model *models, int n_models, const float *weights, const float *mix,
                       size_t length, const dx_apply_params *p, float *out, dx_errbuf *err) {
  dx_status st = check_args(models, n_models, weights, mix, length, p, out, err);
  if (st != DX_OK) return st;
  const int C = models[0].channels, S = models[0].n_sources;
  run_state rs = {mix, length, C, S, 0.0, 1.0, out, 0, 0, p};
  double sd = 0.0;
  if (p->normalize) {
    /* mean and unbiased std of the mono mix, in double */
    double s1 = 0, s2 = 0;
    for (size_t i = 0; i < length; i++) {
      double v = 0;
      for (int c = 0; c < C; c++) v += mix[(size_t)c * length + i];
      v /= C;
      s1 += v;
    }
    rs.mean = s1 / (double)length;
    for (size_t i = 0; i < length; i++) {
      double v = 0;
      for (int c = 0; c < C; c++) v += mix[(size_t)c * length + i];
      v = v / C - rs.mean;
      s2 += v * v;
    }
    sd = length > 1 ? sqrt(s2 / (double)(length - 1)) : 0.0;
    rs.scale = 1.0 / (sd + 1e-8);
  }
  memset(out, 0, (size_t)S * C * length * sizeof *out);

  /* Draw every shift first (model by model, shift by shift, as the official
   * code draws them) so that the progress total is exact. */
  int passes = p->shifts > 0 ? p->shifts : 1;
  double *coef = malloc((size_t)S * sizeof *coef);
  chunk_buf *bufs = calloc((size_t)p->jobs, sizeof *bufs);
  size_t *delays = malloc((size_t)n_models * passes * sizeof *delays);
  if (!coef || !bufs || !delays) {
    free(coef);
    free(bufs);
    free(delays);
    return DX_ERR_NOMEM;
  }
  dx_apply_rng rng;
  dx_apply_rng_seed(&rng, p->seed);
  for (int m = 0; m < n_models; m++)
    for (int sh = 0; sh < passes; sh++) {
      size_t d = 0;
      uint32_t max_shift = (uint32_t)(models[m].samplerate / 2); /* int(0.5 * samplerate) */
      if (p->shifts > 0) d = max_shift - dx_apply_rng_randint(&rng, 0, max_shift);
      delays[(size_t)m * passes + sh] = d;
      geometry g;
      if (model_geometry(&models[m], p, length + d, &g, NULL) == DX_OK) rs.total += chunks_in(&g);
    }
  const float *tri = NULL;
  size_t tri_len = 0;
  for (int m = 0; m < n_models && st == DX_OK; m++) {
    for (int k = 0; k < S; k++) {
      double tot = 0;
      for (int j = 0; j < n_models; j++) tot += weights ? weights[(size_t)j * S + k] : 1.0;
      coef[k] = (weights ? weights[(size_t)m * S + k] : 1.0) / tot / passes;
    }
    for (int sh = 0; sh < passes && st == DX_OK; sh++) {
      st = run_pass(&rs, &models[m], delays[(size_t)m * passes + sh], coef, bufs, p->jobs, &tri, &tri_len, err);
    }
  }
  free((void *)tri);
  for (int i = 0; i < p->jobs; i++) {
    free(bufs[i].in);
    free(bufs[i].out);
  }
  free(bufs);
  free(coef);
  free(delays);
  if (st != DX_OK) return st;
  if (p->normalize) {
    float a = (float)(sd + 1e-8), b = (float)rs.mean;
    size_t n = (size_t)S * C * length;
    for (size_t i = 0; i < n; i++) out[i] = out[i] * a + b;
  }
  return DX_OK;
}
