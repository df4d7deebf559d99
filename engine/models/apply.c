/* apply.c: the long-track procedure (see dx_apply.h): outer normalisation,
 * shifts, split with overlap and triangular blending, bags with per-source
 * weights, streamed.
 *
 * Instead of summing weighted chunks and dividing by the summed weights at
 * the end (which needs a track-long weight array per pass), every chunk
 * sample is folded into the output window at once with its final coefficient
 *   bag_w[m][k] / sum_m bag_w[m][k] * 1/shifts * w[j] / wsum_pass(t),
 * where wsum_pass(t), the sum of the triangle weights of that pass's chunks
 * covering t, is known from the pass's chunk geometry alone: each shift is
 * divided by its own weight sum, as the official code does, without a
 * separate accumulator. All passes run interleaved (the chunk that starts
 * first goes next), so the window that is still open stays one segment and a
 * few strides long; samples behind every pass's next chunk are final and are
 * written out. The result equals the official computation up to float
 * rounding (with one pass, bit for bit the whole-track fold it replaces).
 *
 * Threading: forwards of one batch run on up to params.jobs threads started
 * here; buffers are per worker; reading, folding, writing and progress happen
 * on the calling thread in chunk order. */
#include "dx_apply.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dx_util.h"

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

/* ---- one streamed run ---- */

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

/* One (model, shift) pass: its geometry in window coordinates (track sample
 * u is window position u + delay), its chunks and where it stands. */
typedef struct {
  const dx_apply_model *m;
  geometry g;
  size_t delay, n, next; /* chunks in the pass, next one to run */
  const float *tri;      /* triangle of g.seg samples (shared between passes of equal seg) */
  int owns_tri;
  double *coef;          /* [sources]: bag weight / weight sum / shifts */
} pass;

typedef struct {
  int pass;
  size_t off, len, run; /* chunk start (window coordinates), its length, the length it runs at */
  float *in, *out;      /* [C][run], [S][C][run] */
  double *fac;          /* [run]: blending factor of each chunk sample (chunk_fold) */
  size_t cap;           /* capacity of in/out/fac, in samples per channel */
} chunk_buf;

typedef struct {
  const dx_apply_io *io;
  size_t length;
  int channels, sources;
  int normalize;
  double mean, scale; /* input x -> (x - mean) * scale */
  float a, b;         /* output y -> y * a + b */
  float *ring;        /* [S][C][R]: open window of the blended output, track sample u at u % R */
  size_t R, written;  /* samples [0, written) are final and handed to io->write */
  float *stage;       /* [S][C][STAGE] */
  size_t done, total;
  const dx_apply_params *p;
} run_state;

#define STAGE 16384 /* samples per channel handed to io->write at most */

static dx_status chunk_reserve(chunk_buf *b, size_t run, int channels, int sources) {
  if (run <= b->cap) return DX_OK;
  float *in = realloc(b->in, run * (size_t)channels * sizeof *in);
  if (!in) return DX_ERR_NOMEM;
  b->in = in;
  float *out = realloc(b->out, run * (size_t)channels * (size_t)sources * sizeof *out);
  if (!out) return DX_ERR_NOMEM;
  b->out = out;
  double *fac = realloc(b->fac, run * sizeof *fac);
  if (!fac) return DX_ERR_NOMEM;
  b->fac = fac;
  b->cap = run;
  return DX_OK;
}

/* Fill b->in: window position t maps to track sample t - delay; the chunk is
 * padded centred around itself, zeros outside the track. */
static dx_status chunk_fill(const run_state *rs, chunk_buf *b, size_t delay, dx_errbuf *err) {
  long long start = (long long)b->off - (long long)((b->run - b->len) / 2) - (long long)delay;
  long long lo = start < 0 ? 0 : start, hi = start + (long long)b->run;
  if (hi > (long long)rs->length) hi = (long long)rs->length;
  size_t i0 = lo < hi ? (size_t)(lo - start) : b->run, i1 = lo < hi ? (size_t)(hi - start) : b->run;
  for (int c = 0; c < rs->channels; c++) {
    float *dst = b->in + (size_t)c * b->run;
    memset(dst, 0, i0 * sizeof *dst);
    memset(dst + i1, 0, (b->run - i1) * sizeof *dst);
  }
  if (i1 <= i0) return DX_OK;
  dx_status st = rs->io->read(rs->io->read_user, (size_t)lo, i1 - i0, b->in + i0, b->run, err);
  if (st != DX_OK) return st;
  for (int c = 0; c < rs->channels; c++) {
    float *dst = b->in + (size_t)c * b->run;
    for (size_t i = i0; i < i1; i++) dst[i] = (float)((dst[i] - rs->mean) * rs->scale);
  }
  return DX_OK;
}

/* Fold a chunk's output into the ring: first the blending factor of each
 * sample inside the track (checking that it lies in the open window), then
 * plane by plane over contiguous runs of the ring. Every ring slot receives
 * one term per chunk, so the order of the loops does not change the sums. */
static dx_status chunk_fold(run_state *rs, chunk_buf *b, const pass *ps, dx_errbuf *err) {
  const size_t trim = (b->run - b->len) / 2, L = rs->length, R = rs->R, C = (size_t)rs->channels;
  /* window position t = off + j is track sample t - delay: inside the track for j in [j0, j1) */
  size_t j0 = b->off < ps->delay ? ps->delay - b->off : 0, j1 = b->len;
  if (j0 > b->len) j0 = b->len;
  if (b->off + j1 > ps->delay + L) j1 = ps->delay + L > b->off ? ps->delay + L - b->off : 0;
  if (j1 < j0) j1 = j0;
  for (size_t j = j0; j < j1; j++) {
    size_t t = b->off + j, u = t - ps->delay;
    if (u < rs->written || u - rs->written >= R)
      return dx_fail(err, DX_ERR_INTERNAL, "chunk outside the open window (sample %zu, window from %zu)", u,
                     rs->written);
    b->fac[j] = (double)ps->tri[j] / weight_sum(&ps->g, ps->tri, t);
  }
  for (int s = 0; s < rs->sources; s++) {
    const double cs = ps->coef[s];
    for (size_t c = 0; c < C; c++) {
      const float *y = b->out + ((size_t)s * C + c) * b->run + trim;
      float *ring = rs->ring + ((size_t)s * C + c) * R;
      for (size_t j = j0; j < j1;) {
        size_t pos = (b->off + j - ps->delay) % R, n = j1 - j;
        if (n > R - pos) n = R - pos;
        float *dst = ring + pos;
        const double *fac = b->fac + j;
        const float *src = y + j;
        for (size_t i = 0; i < n; i++) dst[i] += (float)(cs * fac[i]) * src[i];
        j += n;
      }
    }
  }
  return DX_OK;
}

/* Finalise samples [written, upto): undo the normalisation, hand them to
 * io->write, clear their ring slots. */
static dx_status flush_to(run_state *rs, size_t upto, dx_errbuf *err) {
  const size_t SC = (size_t)rs->sources * rs->channels, R = rs->R;
  while (rs->written < upto) {
    size_t u0 = rs->written, pos = u0 % R, n = upto - u0;
    if (n > STAGE) n = STAGE;
    if (n > R - pos) n = R - pos;
    for (size_t sc = 0; sc < SC; sc++) {
      float *src = rs->ring + sc * R + pos, *dst = rs->stage + sc * n;
      if (rs->normalize)
        for (size_t i = 0; i < n; i++) dst[i] = src[i] * rs->a + rs->b;
      else
        memcpy(dst, src, n * sizeof *dst);
      memset(src, 0, n * sizeof *src);
    }
    dx_status st = rs->io->write(rs->io->write_user, u0, n, rs->stage, err);
    if (st != DX_OK) return st;
    rs->written += n;
  }
  return DX_OK;
}

/* Start (in track coordinates, may be negative) of a pass's next chunk. */
static long long next_start(const pass *ps) { return (long long)(ps->next * ps->g.stride) - (long long)ps->delay; }

/* Samples no chunk still to run can touch: [0, frontier). */
static size_t frontier(const run_state *rs, const pass *ps, int n_pass) {
  long long f = (long long)rs->length;
  for (int i = 0; i < n_pass; i++)
    if (ps[i].next < ps[i].n && next_start(&ps[i]) < f) f = next_start(&ps[i]);
  return f < 0 ? 0 : (size_t)f;
}

/* Run every pass chunk by chunk, always taking the chunk that starts first
 * (ties: the earlier pass), `jobs` at a time, folding in that order. */
static dx_status run_all(run_state *rs, pass *ps, int n_pass, chunk_buf *bufs, int jobs, dx_errbuf *err) {
  const dx_apply_params *p = rs->p;
  for (;;) {
    int batch = 0;
    for (; batch < jobs; batch++) {
      int best = -1;
      for (int i = 0; i < n_pass; i++)
        if (ps[i].next < ps[i].n && (best < 0 || next_start(&ps[i]) < next_start(&ps[best]))) best = i;
      if (best < 0) break;
      pass *q = &ps[best];
      chunk_buf *b = &bufs[batch];
      b->pass = best;
      b->off = q->next++ * q->g.stride;
      b->len = q->g.win - b->off < q->g.seg ? q->g.win - b->off : q->g.seg;
      const dx_apply_model *m = q->m;
      if (m->fixed_length && p->segment > 0 && p->split)
        b->run = seconds_to_samples(p->segment, m->samplerate);
      else
        b->run = m->valid_length ? m->valid_length(m->user, b->len) : b->len;
      if (b->run < b->len)
        return dx_fail(err, DX_ERR_INVALID, "model cannot run a chunk of %zu samples (at most %zu)", b->len, b->run);
      if (chunk_reserve(b, b->run, rs->channels, rs->sources) != DX_OK) return DX_ERR_NOMEM;
      dx_status st = chunk_fill(rs, b, q->delay, err);
      if (st != DX_OK) return st;
    }
    if (batch == 0) break;
    fwd_task tasks[batch];
    for (int i = 0; i < batch; i++)
      tasks[i] = (fwd_task){ps[bufs[i].pass].m, i, bufs[i].in, bufs[i].run, bufs[i].out, DX_OK, {{0}}};
    dx_run_side_by_side(fwd_thread, tasks, sizeof *tasks, batch);
    for (int i = 0; i < batch; i++)
      if (tasks[i].st != DX_OK) {
        if (err) *err = tasks[i].err;
        return tasks[i].st;
      }
    for (int i = 0; i < batch; i++) {
      dx_status st = chunk_fold(rs, &bufs[i], &ps[bufs[i].pass], err);
      if (st != DX_OK) return st;
      rs->done++;
      if (p->progress && p->progress(p->progress_user, rs->done, rs->total))
        return dx_fail(err, DX_ERR_CANCELLED, "separation cancelled");
    }
    dx_status st = flush_to(rs, frontier(rs, ps, n_pass), err);
    if (st != DX_OK) return st;
  }
  return flush_to(rs, rs->length, err);
}

static dx_status check_args(const dx_apply_model *models, int n_models, const float *weights, size_t length,
                            const dx_apply_params *p, dx_errbuf *err) {
  if (!models || n_models < 1 || !p) return dx_fail(err, DX_ERR_INVALID, "missing argument");
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

/* Mean and unbiased std of the mono mix, in double, in two reading passes
 * (the same sums, in the same order, as over a buffer in memory). */
static dx_status mix_stats(run_state *rs, double *mean, double *sd, dx_errbuf *err) {
  const size_t L = rs->length, C = (size_t)rs->channels;
  float *buf = malloc(STAGE * C * sizeof *buf);
  if (!buf) return DX_ERR_NOMEM;
  double s1 = 0, s2 = 0;
  dx_status st = DX_OK;
  for (int round = 0; round < 2 && st == DX_OK; round++)
    for (size_t u0 = 0; u0 < L && st == DX_OK; u0 += STAGE) {
      size_t n = L - u0 < STAGE ? L - u0 : STAGE;
      if ((st = rs->io->read(rs->io->read_user, u0, n, buf, n, err)) != DX_OK) break;
      for (size_t i = 0; i < n; i++) {
        double v = 0;
        for (size_t c = 0; c < C; c++) v += buf[c * n + i];
        if (round == 0) {
          v /= (double)C;
          s1 += v;
        } else {
          v = v / (double)C - *mean;
          s2 += v * v;
        }
      }
      if (round == 0 && u0 + n >= L) *mean = s1 / (double)L;
    }
  free(buf);
  *sd = L > 1 ? sqrt(s2 / (double)(L - 1)) : 0.0;
  return st;
}

dx_status dx_apply_stream(const dx_apply_model *models, int n_models, const float *weights, const dx_apply_io *io,
                          const dx_apply_params *p, dx_errbuf *err) {
  if (!io || !io->read || !io->write) return dx_fail(err, DX_ERR_INVALID, "missing argument");
  dx_status st = check_args(models, n_models, weights, io->length, p, err);
  if (st != DX_OK) return st;
  const int C = models[0].channels, S = models[0].n_sources;
  const size_t length = io->length;
  run_state rs;
  memset(&rs, 0, sizeof rs);
  rs.io = io;
  rs.length = length;
  rs.channels = C;
  rs.sources = S;
  rs.normalize = p->normalize;
  rs.scale = 1.0;
  rs.p = p;
  if (p->normalize) {
    double sd = 0;
    if ((st = mix_stats(&rs, &rs.mean, &sd, err)) != DX_OK) return st;
    rs.scale = 1.0 / (sd + 1e-8);
    rs.a = (float)(sd + 1e-8);
    rs.b = (float)rs.mean;
  }

  /* Draw every shift first (model by model, shift by shift, as the official
   * code draws them) so that the progress total is exact. */
  const int shifts = p->shifts > 0 ? p->shifts : 1, n_pass = n_models * shifts;
  pass *ps = calloc((size_t)n_pass, sizeof *ps);
  double *coefs = malloc((size_t)n_pass * S * sizeof *coefs);
  chunk_buf *bufs = calloc((size_t)p->jobs, sizeof *bufs);
  if (!ps || !coefs || !bufs) {
    st = DX_ERR_NOMEM;
    goto done;
  }
  dx_apply_rng rng;
  dx_apply_rng_seed(&rng, p->seed);
  size_t max_seg = 0, max_stride = 0;
  for (int m = 0; m < n_models; m++)
    for (int sh = 0; sh < shifts; sh++) {
      pass *q = &ps[m * shifts + sh];
      q->m = &models[m];
      uint32_t max_shift = (uint32_t)(models[m].samplerate / 2); /* int(0.5 * samplerate) */
      if (p->shifts > 0) q->delay = max_shift - dx_apply_rng_randint(&rng, 0, max_shift);
      if ((st = model_geometry(q->m, p, length + q->delay, &q->g, err)) != DX_OK) goto done;
      q->n = chunks_in(&q->g);
      rs.total += q->n;
      if (q->g.seg > max_seg) max_seg = q->g.seg;
      if (q->g.stride > max_stride) max_stride = q->g.stride;
      q->coef = coefs + (size_t)(m * shifts + sh) * S;
      for (int k = 0; k < S; k++) {
        double tot = 0;
        for (int j = 0; j < n_models; j++) tot += weights ? weights[(size_t)j * S + k] : 1.0;
        q->coef[k] = (weights ? weights[(size_t)m * S + k] : 1.0) / tot / shifts;
      }
      for (int i = 0; i < m * shifts + sh && !q->tri; i++)
        if (ps[i].g.seg == q->g.seg) q->tri = ps[i].tri;
      if (!q->tri) {
        float *w = p->split ? triangle(q->g.seg, p->transition_power) : malloc(q->g.seg * sizeof *w);
        if (!w) {
          st = DX_ERR_NOMEM;
          goto done;
        }
        if (!p->split)
          for (size_t i = 0; i < q->g.seg; i++) w[i] = 1.0f; /* one chunk: no blending */
        q->tri = w;
        q->owns_tri = 1;
      }
    }
  /* The open window: chunks run in order of their start, `jobs` at a time,
   * so none reaches further than a segment and jobs + 1 strides past the
   * first sample not yet final. */
  rs.R = max_seg + ((size_t)p->jobs + 1) * max_stride + 1;
  if (rs.R > length) rs.R = length;
  rs.ring = calloc(rs.R * (size_t)S * C, sizeof *rs.ring);
  rs.stage = malloc((size_t)STAGE * S * C * sizeof *rs.stage);
  if (!rs.ring || !rs.stage) {
    st = dx_fail(err, DX_ERR_NOMEM, "out of memory for the output window (%zu samples)", rs.R);
    goto done;
  }
  st = run_all(&rs, ps, n_pass, bufs, p->jobs, err);
done:
  if (ps)
    for (int i = 0; i < n_pass; i++)
      if (ps[i].owns_tri) free((void *)ps[i].tri);
  if (bufs)
    for (int i = 0; i < p->jobs; i++) {
      free(bufs[i].in);
      free(bufs[i].out);
      free(bufs[i].fac);
    }
  free(bufs);
  free(ps);
  free(coefs);
  free(rs.ring);
  free(rs.stage);
  return st;
}

/* ---- the whole track in memory ---- */

static dx_status mem_read(void *user, size_t offset, size_t n, float *dst, size_t stride, dx_errbuf *err) {
  (void)err;
  const dx_apply_mem *m = user;
  for (int c = 0; c < m->channels; c++)
    memcpy(dst + (size_t)c * stride, m->mix + (size_t)c * m->length + offset, n * sizeof *dst);
  return DX_OK;
}

static dx_status mem_write(void *user, size_t offset, size_t n, const float *src, dx_errbuf *err) {
  (void)err;
  const dx_apply_mem *m = user;
  for (size_t pl = 0; pl < (size_t)m->planes; pl++)
    memcpy(m->out + pl * m->length + offset, src + pl * n, n * sizeof *src);
  return DX_OK;
}

void dx_apply_mem_io(dx_apply_mem *m, dx_apply_io *io) {
  io->length = m->length;
  io->read = mem_read;
  io->read_user = m;
  io->write = mem_write;
  io->write_user = m;
}

dx_status dx_apply_run(const dx_apply_model *models, int n_models, const float *weights, const float *mix,
                       size_t length, const dx_apply_params *p, float *out, dx_errbuf *err) {
  if (!models || n_models < 1 || !mix || !out) return dx_fail(err, DX_ERR_INVALID, "missing argument");
  dx_apply_mem m = {mix, out, length, models[0].channels, models[0].n_sources * models[0].channels};
  dx_apply_io io;
  dx_apply_mem_io(&m, &io);
  return dx_apply_stream(models, n_models, weights, &io, p, err);
}
