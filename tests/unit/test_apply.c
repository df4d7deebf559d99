/* test_apply.c: the long-track procedure (engine/models/apply.c) against a
 * literal transcription of the official apply_model (full-length sum and
 * weight arrays, recursion shifts -> split -> padded chunk), with a small
 * model-shaped function standing in for a network: it mixes channels, looks
 * one sample back, is nonlinear and depends on the position inside its input,
 * so normalisation, padding, trimming and blending all show in its output.
 * The streamed form (dx_apply_stream) is checked against the same
 * transcription, and its peak memory is checked not to grow with the
 * track's length (10 minutes against 2, in child processes). */
#include <stdint.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "dx_apply.h"
#include "dx_test.h"

#define SR 44100
#define C 2
#define S 3

typedef struct {
  double g[S], h[S], k[S], e[S], q[S];
  size_t multiple; /* valid length: round up to this (0: own length) */
  size_t fixed;    /* valid length: always this (HTDemucs-like), 0: not fixed */
  int calls;
} toy;

static size_t toy_valid(void *user, size_t len) {
  toy *t = user;
  if (t->fixed) return t->fixed;
  if (t->multiple) return (len + t->multiple - 1) / t->multiple * t->multiple;
  return len;
}

static dx_status toy_forward(void *user, int worker, const float *in, size_t len, float *out, dx_errbuf *err) {
  (void)worker;
  (void)err;
  toy *t = user;
  __atomic_fetch_add(&t->calls, 1, __ATOMIC_RELAXED);
  for (int s = 0; s < S; s++)
    for (int c = 0; c < C; c++)
      for (size_t i = 0; i < len; i++) {
        double x = in[c * len + i], xo = in[(1 - c) * len + i], xp = i ? in[c * len + i - 1] : 0.0;
        double pos = (double)i / (double)len - 0.5;
        out[((size_t)s * C + c) * len + i] = (float)(t->g[s] * x + t->h[s] * xo + t->k[s] * xp + t->e[s] * pos + t->q[s] * x * x);
      }
  return DX_OK;
}

static toy toy_make(int seed) {
  toy t;
  memset(&t, 0, sizeof t);
  for (int s = 0; s < S; s++) {
    t.g[s] = 0.3 + 0.2 * s + 0.05 * seed;
    t.h[s] = -0.1 * (s + 1) + 0.02 * seed;
    t.k[s] = 0.25 - 0.1 * s;
    t.e[s] = 0.2 * (s - 1) + 0.1 * seed;
    t.q[s] = 0.05 * (s + 1);
  }
  return t;
}

static dx_apply_model model_of(toy *t, double segment) {
  dx_apply_model m = {S, C, SR, segment, t->fixed != 0, toy_valid, toy_forward, t};
  return m;
}

/* ---- the official procedure, transcribed literally ---- */

/* leaf: run the model on the chunk [off, off+len) of tensor T (length TL), padded centred */
static float *ref_leaf(const dx_apply_model *m, const float *T, size_t TL, size_t off, size_t len, double user_segment) {
  size_t valid = (m->fixed_length && user_segment > 0) ? (size_t)(user_segment * SR) : m->valid_length(m->user, len);
  size_t delta = valid - len;
  long long start = (long long)off - (long long)(delta / 2);
  float *in = calloc((size_t)C * valid, sizeof *in);
  float *y = malloc((size_t)S * C * valid * sizeof *y);
  for (int c = 0; c < C; c++)
    for (size_t i = 0; i < valid; i++) {
      long long u = start + (long long)i;
      if (u >= 0 && u < (long long)TL) in[c * valid + i] = T[c * TL + (size_t)u];
    }
  m->forward(m->user, 0, in, valid, y, NULL);
  float *out = malloc((size_t)S * C * len * sizeof *out);
  for (int sc = 0; sc < S * C; sc++) memcpy(out + sc * len, y + sc * valid + delta / 2, len * sizeof(float));
  free(in);
  free(y);
  return out;
}

/* split over the view [off0, off0+vlen) of T */
static float *ref_split(const dx_apply_model *m, const float *T, size_t TL, size_t off0, size_t vlen, double overlap,
                        double user_segment) {
  double segment = user_segment > 0 ? user_segment : m->segment;
  size_t seg = (size_t)(SR * segment + 1e-6);
  size_t stride = (size_t)((1 - overlap) * seg);
  float *w = malloc(seg * sizeof *w);
  for (size_t j = 0; j < seg / 2; j++) w[j] = (float)(j + 1);
  for (size_t j = seg / 2; j < seg; j++) w[j] = (float)(seg - j);
  float mx = (float)(seg - seg / 2);
  for (size_t j = 0; j < seg; j++) w[j] /= mx;
  float *out = calloc((size_t)S * C * vlen, sizeof *out);
  float *sum = calloc(vlen, sizeof *sum);
  for (size_t offset = 0; offset < vlen; offset += stride) {
    size_t len = vlen - offset < seg ? vlen - offset : seg;
    float *y = ref_leaf(m, T, TL, off0 + offset, len, user_segment);
    for (int sc = 0; sc < S * C; sc++)
      for (size_t j = 0; j < len; j++) out[sc * vlen + offset + j] += w[j] * y[sc * len + j];
    for (size_t j = 0; j < len; j++) sum[offset + j] += w[j];
    free(y);
  }
  for (int sc = 0; sc < S * C; sc++)
    for (size_t j = 0; j < vlen; j++) out[sc * vlen + j] /= sum[j];
  free(w);
  free(sum);
  return out;
}

static float *ref_apply(const dx_apply_model *m, const float *wav, size_t L, int shifts, dx_apply_rng *rng,
                        double overlap, double user_segment) {
  if (!shifts) return ref_split(m, wav, L, 0, L, overlap, user_segment);
  size_t ms = SR / 2, PL = L + 2 * ms;
  float *padded = calloc((size_t)C * PL, sizeof *padded);
  for (int c = 0; c < C; c++) memcpy(padded + c * PL + ms, wav + c * L, L * sizeof(float));
  float *out = calloc((size_t)S * C * L, sizeof *out);
  for (int sh = 0; sh < shifts; sh++) {
    size_t offset = dx_apply_rng_randint(rng, 0, (uint32_t)ms);
    size_t vlen = L + ms - offset;
    float *res = ref_split(m, padded, PL, offset, vlen, overlap, user_segment);
    for (int sc = 0; sc < S * C; sc++)
      for (size_t j = 0; j < L; j++) out[sc * L + j] += res[sc * vlen + ms - offset + j];
    free(res);
  }
  for (size_t i = 0; i < (size_t)S * C * L; i++) out[i] /= (float)shifts;
  free(padded);
  return out;
}

static float *ref_separate(const dx_apply_model *models, int nm, const float *weights, const float *mix, size_t L,
                           int shifts, uint64_t seed, double overlap, double user_segment) {
  double s1 = 0, s2 = 0;
  for (size_t i = 0; i < L; i++) s1 += (mix[i] + mix[L + i]) / 2;
  double mean = s1 / L;
  for (size_t i = 0; i < L; i++) {
    double v = (mix[i] + mix[L + i]) / 2 - mean;
    s2 += v * v;
  }
  double sd = sqrt(s2 / (L - 1));
  float *wav = malloc((size_t)C * L * sizeof *wav);
  for (size_t i = 0; i < (size_t)C * L; i++) wav[i] = (float)((mix[i] - mean) / (sd + 1e-8));
  dx_apply_rng rng;
  dx_apply_rng_seed(&rng, seed);
  float *est = calloc((size_t)S * C * L, sizeof *est);
  double tot[S] = {0};
  for (int m = 0; m < nm; m++) {
    float *o = ref_apply(&models[m], wav, L, shifts, &rng, overlap, user_segment);
    for (int s = 0; s < S; s++) {
      double wv = weights ? weights[m * S + s] : 1.0;
      tot[s] += wv;
      for (size_t i = 0; i < (size_t)C * L; i++) est[s * C * L + i] += (float)wv * o[s * C * L + i];
    }
    free(o);
  }
  for (int s = 0; s < S; s++)
    for (size_t i = 0; i < (size_t)C * L; i++) est[s * C * L + i] = (float)(est[s * C * L + i] / tot[s] * (sd + 1e-8) + mean);
  free(wav);
  return est;
}

/* ---- helpers ---- */

static float *make_mix(size_t L, unsigned seed) {
  float *x = malloc((size_t)C * L * sizeof *x);
  uint32_t st = seed * 2654435761u + 1;
  for (size_t i = 0; i < L; i++) {
    st = st * 1664525u + 1013904223u;
    double noise = ((st >> 8) / 16777216.0 - 0.5) * 0.2;
    x[i] = (float)(0.3 * sin(2 * M_PI * 220.0 * i / SR) + noise + 0.05);
    x[L + i] = (float)(0.2 * sin(2 * M_PI * 331.0 * i / SR + 0.5) - noise + 0.05);
  }
  return x;
}

static double compare(const dx_apply_model *models, int nm, const float *weights, size_t L, dx_apply_params p) {
  float *mix = make_mix(L, (unsigned)L);
  float *out = malloc((size_t)S * C * L * sizeof *out);
  dx_errbuf err = {{0}};
  dx_status st = dx_apply_run(models, nm, weights, mix, L, &p, out, &err);
  CHECK_MSG(st == DX_OK, "%s: %s", dx_strerror(st), err.msg);
  float *ref = ref_separate(models, nm, weights, mix, L, p.shifts, p.seed, p.overlap, p.segment);
  double e = dx_test_rel_l2(out, ref, (size_t)S * C * L);
  free(mix);
  free(out);
  free(ref);
  return e;
}

/* ---- tests ---- */

DX_TEST(rng_matches_python) {
  /* python3 -c "import random; random.seed(N); print([random.randint(0,22050) for _ in range(6)])" */
  static const struct {
    uint64_t seed;
    uint32_t v[6];
  } cases[] = {{0, {12623, 13781, 1326, 8484, 16753, 15922}},
               {42, {20952, 3648, 819, 9012, 8024, 7314}},
               {(1ull << 40) + 7, {20109, 20955, 18690, 15595, 8219, 20171}}};
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    dx_apply_rng r;
    dx_apply_rng_seed(&r, cases[c].seed);
    for (int i = 0; i < 6; i++) CHECK(dx_apply_rng_randint(&r, 0, 22050) == cases[c].v[i]);
  }
}

DX_TEST(split_matches_official) {
  toy t = toy_make(0);
  t.multiple = 100;
  dx_apply_model m = model_of(&t, 0.5);
  dx_apply_params p = dx_apply_default_params();
  p.shifts = 0;
  /* several segments, a short last one; a track shorter than one segment */
  size_t lens[] = {3 * SR + 777, SR / 3, 22050, 22051};
  for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
    double e = compare(&m, 1, NULL, lens[i], p);
    CHECK_MSG(e < 1e-5, "length %zu: rel L2 %.3g", lens[i], e);
  }
  p.overlap = 0.6; /* more than two chunks cover some samples */
  double e = compare(&m, 1, NULL, 2 * SR + 5, p);
  CHECK_MSG(e < 1e-5, "overlap 0.6: rel L2 %.3g", e);
}

DX_TEST(fixed_length_model) {
  toy t = toy_make(1);
  t.fixed = (size_t)(0.5 * SR); /* runs every chunk at its training length */
  dx_apply_model m = model_of(&t, 0.5);
  dx_apply_params p = dx_apply_default_params();
  p.shifts = 0;
  double e = compare(&m, 1, NULL, 2 * SR + 1234, p);
  CHECK_MSG(e < 1e-5, "rel L2 %.3g", e);
  p.segment = 0.3; /* a shorter segment sets the run length of a transformer model */
  e = compare(&m, 1, NULL, 2 * SR + 1234, p);
  CHECK_MSG(e < 1e-5, "segment 0.3: rel L2 %.3g", e);
  p.segment = 0.6; /* longer than trained: refused */
  float mix[2 * 1000] = {0}, out[S * 2 * 1000];
  mix[3] = 1;
  dx_errbuf err = {{0}};
  CHECK(dx_apply_run(&m, 1, NULL, mix, 1000, &p, out, &err) == DX_ERR_INVALID);
}

DX_TEST(shifts_match_official) {
  toy t = toy_make(2);
  t.multiple = 64;
  dx_apply_model m = model_of(&t, 0.4);
  dx_apply_params p = dx_apply_default_params();
  p.shifts = 2;
  p.seed = 1234;
  double e = compare(&m, 1, NULL, 2 * SR + 99, p);
  CHECK_MSG(e < 1e-5, "rel L2 %.3g", e);
  /* the same seed repeats the run exactly; another seed differs */
  size_t L = SR + 17;
  float *mix = make_mix(L, 5);
  float *a = malloc((size_t)S * C * L * sizeof *a), *b = malloc((size_t)S * C * L * sizeof *b);
  CHECK(dx_apply_run(&m, 1, NULL, mix, L, &p, a, NULL) == DX_OK);
  CHECK(dx_apply_run(&m, 1, NULL, mix, L, &p, b, NULL) == DX_OK);
  CHECK(memcmp(a, b, (size_t)S * C * L * sizeof *a) == 0);
  p.seed = 1235;
  CHECK(dx_apply_run(&m, 1, NULL, mix, L, &p, b, NULL) == DX_OK);
  CHECK(dx_test_rel_l2(a, b, (size_t)S * C * L) > 1e-4);
  free(mix);
  free(a);
  free(b);
}

DX_TEST(bag_weights_match_official) {
  toy t1 = toy_make(3), t2 = toy_make(4);
  t1.multiple = 50;
  t2.fixed = (size_t)(0.3 * SR);
  dx_apply_model ms[2] = {model_of(&t1, 0.5), model_of(&t2, 0.3)};
  const float w[2 * S] = {1.0f, 0.0f, 0.5f, 0.0f, 1.0f, 0.5f};
  dx_apply_params p = dx_apply_default_params();
  p.shifts = 1;
  p.seed = 7;
  double e = compare(ms, 2, w, 2 * SR + 3, p);
  CHECK_MSG(e < 1e-5, "rel L2 %.3g", e);
  /* identity weights pick each source from one model only */
  const float id[2 * S] = {1, 0, 1, 0, 1, 0};
  p.shifts = 0;
  e = compare(ms, 2, id, SR + 3, p);
  CHECK_MSG(e < 1e-5, "identity: rel L2 %.3g", e);
  /* a source no model is weighted for is refused */
  const float bad[2 * S] = {1, 0, 1, 1, 0, 1};
  float mix[2 * 100] = {0}, out[S * 2 * 100];
  CHECK(dx_apply_run(ms, 2, bad, mix, 100, &p, out, NULL) == DX_ERR_INVALID);
}

static dx_status copy_forward(void *user, int worker, const float *in, size_t len, float *out, dx_errbuf *err) {
  (void)user;
  (void)worker;
  (void)err;
  for (int s = 0; s < S; s++) memcpy(out + (size_t)s * C * len, in, (size_t)C * len * sizeof *in);
  return DX_OK;
}

DX_TEST(identity_model_returns_the_mix) {
  /* a model returning its input for every source gives back the mix: the
   * blending weights sum to one and the normalisation is undone exactly */
  dx_apply_model m = {S, C, SR, 0.25, 0, NULL, copy_forward, NULL};
  dx_apply_params p = dx_apply_default_params();
  p.shifts = 3;
  size_t L = 2 * SR + 11;
  float *mix = make_mix(L, 9);
  float *out = malloc((size_t)S * C * L * sizeof *out);
  CHECK(dx_apply_run(&m, 1, NULL, mix, L, &p, out, NULL) == DX_OK);
  for (int s = 0; s < S; s++) {
    double e = dx_test_rel_l2(out + (size_t)s * C * L, mix, (size_t)C * L);
    CHECK_MSG(e < 1e-6, "source %d: rel L2 %.3g", s, e);
  }
  free(mix);
  free(out);
}

typedef struct {
  size_t last, total, calls, stop_at;
} prog;

static int on_progress(void *user, size_t done, size_t total) {
  prog *p = user;
  CHECK(done == p->last + 1);
  p->last = done;
  p->total = total;
  p->calls++;
  return p->stop_at && done >= p->stop_at;
}

DX_TEST(jobs_progress_and_cancel) {
  toy t = toy_make(5);
  t.multiple = 100;
  dx_apply_model m = model_of(&t, 0.2);
  size_t L = 3 * SR + 5;
  float *mix = make_mix(L, 3);
  float *a = malloc((size_t)S * C * L * sizeof *a), *b = malloc((size_t)S * C * L * sizeof *b);
  dx_apply_params p = dx_apply_default_params();
  p.shifts = 2;
  prog pr = {0, 0, 0, 0};
  p.progress = on_progress;
  p.progress_user = &pr;
  t.calls = 0;
  CHECK(dx_apply_run(&m, 1, NULL, mix, L, &p, a, NULL) == DX_OK);
  CHECK(pr.last == pr.total && pr.total == (size_t)t.calls && pr.total > 20);
  /* three workers give the same bits */
  memset(&pr, 0, sizeof pr);
  p.jobs = 3;
  CHECK(dx_apply_run(&m, 1, NULL, mix, L, &p, b, NULL) == DX_OK);
  CHECK(memcmp(a, b, (size_t)S * C * L * sizeof *a) == 0);
  /* a progress callback that asks to stop cancels the run */
  memset(&pr, 0, sizeof pr);
  pr.stop_at = 4;
  dx_errbuf err = {{0}};
  CHECK(dx_apply_run(&m, 1, NULL, mix, L, &p, b, &err) == DX_ERR_CANCELLED);
  CHECK(pr.last >= 4 && pr.last < pr.total);
  free(mix);
  free(a);
  free(b);
}

static dx_status failing_forward(void *user, int worker, const float *in, size_t len, float *out, dx_errbuf *err) {
  (void)user, (void)worker, (void)in, (void)len, (void)out;
  return dx_fail(err, DX_ERR_CUDA, "device lost");
}

DX_TEST(forward_errors_propagate) {
  dx_apply_model m = {S, C, SR, 0.25, 0, NULL, failing_forward, NULL};
  dx_apply_params p = dx_apply_default_params();
  float *mix = make_mix(SR, 1), *out = malloc((size_t)S * C * SR * sizeof *out);
  dx_errbuf err = {{0}};
  CHECK(dx_apply_run(&m, 1, NULL, mix, SR, &p, out, &err) == DX_ERR_CUDA);
  CHECK(strstr(err.msg, "device lost") != NULL);
  CHECK(dx_apply_run(&m, 1, NULL, mix, 0, &p, out, &err) == DX_ERR_EMPTY);
  p.overlap = 1.0;
  CHECK(dx_apply_run(&m, 1, NULL, mix, SR, &p, out, &err) == DX_ERR_INVALID);
  free(mix);
  free(out);
}

/* ---- streamed ---- */

typedef struct {
  const float *mix;
  float *out;
  size_t L, next_write, reads;
} stream_io;

static dx_status st_read(void *user, size_t off, size_t n, float *dst, size_t stride, dx_errbuf *err) {
  (void)err;
  stream_io *s = user;
  CHECK(off + n <= s->L);
  for (int c = 0; c < C; c++) memcpy(dst + c * stride, s->mix + c * s->L + off, n * sizeof *dst);
  s->reads++;
  return DX_OK;
}

static dx_status st_write(void *user, size_t off, size_t n, const float *src, dx_errbuf *err) {
  (void)err;
  stream_io *s = user;
  CHECK(off == s->next_write); /* in order, every sample once */
  for (int sc = 0; sc < S * C; sc++) memcpy(s->out + sc * s->L + off, src + sc * n, n * sizeof *src);
  s->next_write = off + n;
  return DX_OK;
}

DX_TEST(stream_matches_official_with_shifts_and_bag) {
  toy t1 = toy_make(6), t2 = toy_make(7);
  t1.multiple = 32;
  t2.fixed = (size_t)(0.3 * SR);
  dx_apply_model ms[2] = {model_of(&t1, 0.35), model_of(&t2, 0.3)};
  const float w[2 * S] = {1.0f, 0.25f, 0.5f, 0.5f, 1.0f, 0.5f};
  size_t L = 4 * SR + 321;
  float *mix = make_mix(L, 11);
  float *out = malloc((size_t)S * C * L * sizeof *out);
  for (int jobs = 1; jobs <= 3; jobs += 2) {
    dx_apply_params p = dx_apply_default_params();
    p.shifts = 2;
    p.seed = 99;
    p.jobs = jobs;
    stream_io io = {mix, out, L, 0, 0};
    dx_apply_io aio = {L, st_read, &io, st_write, &io};
    dx_errbuf err = {{0}};
    dx_status st = dx_apply_stream(ms, 2, w, &aio, &p, &err);
    CHECK_MSG(st == DX_OK, "%s: %s", dx_strerror(st), err.msg);
    CHECK(io.next_write == L);
    float *ref = ref_separate(ms, 2, w, mix, L, p.shifts, p.seed, p.overlap, p.segment);
    double e = dx_test_rel_l2(out, ref, (size_t)S * C * L);
    CHECK_MSG(e < 1e-5, "jobs %d: rel L2 %.3g", jobs, e);
    /* and the in-memory entry point gives the same bits */
    float *mem = malloc((size_t)S * C * L * sizeof *mem);
    CHECK(dx_apply_run(ms, 2, w, mix, L, &p, mem, NULL) == DX_OK);
    CHECK(memcmp(mem, out, (size_t)S * C * L * sizeof *mem) == 0);
    free(mem);
    free(ref);
  }
  free(mix);
  free(out);
}

/* A long track that is never held: samples are made on the fly and the
 * output only summed. */
typedef struct {
  size_t L;
  double sum;
} synth_io;

static dx_status syn_read(void *user, size_t off, size_t n, float *dst, size_t stride, dx_errbuf *err) {
  (void)user, (void)err;
  for (size_t i = 0; i < n; i++) {
    size_t u = off + i;
    dst[i] = (float)(0.3 * sin(0.01 * (double)u) + 0.1 * (double)((u * 2654435761u) % 1000) / 1000.0);
    dst[stride + i] = (float)(0.2 * sin(0.013 * (double)u));
  }
  return DX_OK;
}

static dx_status syn_write(void *user, size_t off, size_t n, const float *src, dx_errbuf *err) {
  (void)off, (void)err;
  synth_io *s = user;
  for (size_t i = 0; i < (size_t)S * C * n; i += 97) s->sum += src[i];
  return DX_OK;
}

static dx_status cheap_forward(void *user, int worker, const float *in, size_t len, float *out, dx_errbuf *err) {
  (void)user, (void)worker, (void)err;
  for (int s = 0; s < S; s++)
    for (int c = 0; c < C; c++)
      for (size_t i = 0; i < len; i++) out[((size_t)s * C + c) * len + i] = (float)(s + 1) * 0.25f * in[c * len + i];
  return DX_OK;
}

/* A child that streams `seconds` of audio through the procedure. */
static int stream_seconds(void *ctx) {
  double seconds = *(const double *)ctx;
  dx_apply_model m = {S, C, SR, 1.0, 0, NULL, cheap_forward, NULL};
  dx_apply_params p = dx_apply_default_params();
  p.shifts = 2;
  p.jobs = 2;
  synth_io s = {(size_t)(seconds * SR), 0};
  dx_apply_io io = {s.L, syn_read, &s, syn_write, &s};
  return dx_apply_stream(&m, 1, NULL, &io, &p, NULL) == DX_OK && isfinite(s.sum) ? 0 : -1;
}

/* Peak resident memory (KiB) of a child that streams `seconds` of audio. */
static long child_peak(double seconds) { return dx_test_child_peak_kib(stream_seconds, &seconds); }

DX_TEST(stream_memory_does_not_grow_with_length) {
  long short_run = child_peak(120), long_run = child_peak(600);
  fprintf(stderr, "  peak RSS: 2 min %ld KiB, 10 min %ld KiB\n", short_run, long_run);
  CHECK(short_run > 0 && long_run > 0);
  /* a track-long output would be 3 x 2 x 4 bytes x 26.5 M samples = 635 MB
   * more; the streamed run may differ by a few pages (a little more under
   * a sanitizer's allocator) */
  CHECK_MSG(long_run - short_run < 16384, "peak grew by %ld KiB", long_run - short_run);
}

DX_TEST_MAIN(DX_T(rng_matches_python), DX_T(split_matches_official), DX_T(fixed_length_model),
             DX_T(shifts_match_official), DX_T(bag_weights_match_official), DX_T(identity_model_returns_the_mix),
             DX_T(jobs_progress_and_cancel), DX_T(forward_errors_propagate),
             DX_T(stream_matches_official_with_shifts_and_bag), DX_T(stream_memory_does_not_grow_with_length))
