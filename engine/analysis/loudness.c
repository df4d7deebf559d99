/* loudness.c: EBU R 128 loudness of a track in one pass over the samples:
 * integrated loudness (ITU-R BS.1770-4 gating, LUFS), loudness range
 * (EBU Tech 3342, LU) and true peak (dBTP, the largest over channels), on
 * the original channels at the original rate.
 *
 * K-weighting: the BS.1770 pre-filter (high shelf, +4 dB above ~1.7 kHz)
 * and RLB high-pass (~38 Hz), designed for any rate from their analogue
 * parameters with the bilinear transform, run as one fourth-order IIR in
 * double. Only the mean square of every 100 ms sub-block is kept; the
 * 400 ms gating blocks (75 % overlap) and the 3 s short-term windows (10 Hz,
 * as Tech 3342 since 2016 asks) are sums of consecutive sub-blocks.
 * Channel weights follow the usual map (L, R, C, LFE unused, Ls, Rs; 4
 * channels L, R, Ls, Rs; 5 channels L, R, C, Ls, Rs; surrounds weigh 1.41,
 * channels past the sixth are left out); a mono file is one channel.
 *
 * True peak follows BS.1770-4 Annex 2: 4x oversampling with a 48-tap
 * interpolator (12 taps per phase); ours is a Hann-windowed sinc with each
 * phase normalised to unit gain at DC. The sample values themselves count.
 * Only stretches of the signal where an interpolated value could exceed
 * the peak found so far are interpolated (see dx_true_peak).
 *
 * dx_loudness_measure takes a whole planar buffer; dx_loudness_stream_*
 * take a track block by block (interleaved, as it is decoded) and give
 * the same values: they share the filter step, the gating and the
 * interpolation of a block (see "streaming" below).
 * Threading: no shared state; thread-safe (a stream is one thread's). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dx_analysis.h"
#include "dx_hot.h"

/* vectors stay inside functions (none crosses a call): the baseline
 * build's ABI note about them does not apply */
#pragma GCC diagnostic ignored "-Wpsabi"

#define TP_HALF 6    /* taps each side of the interpolated point */
#define TP_BLOCK 256 /* samples per interpolated block */
#define ABS_GATE_LUFS (-70.0)

static inline float maxf(float a, float b) { return a > b ? a : b; }

/* ---- true peak ---- */

typedef struct {
  float c[3][2 * TP_HALF]; /* phase p+1 (t = i + (p+1)/4), tap k weighs x[i + k - (TP_HALF - 1)] */
  double gain;             /* max over phases of sum_k |c[p][k]| */
  double bound;            /* gain with the rounding margin: see dx_true_peak */
} tp_filter;

static void tp_filter_init(tp_filter *f) {
  f->gain = 0;
  for (int p = 1; p <= 3; p++) {
    double sum = 0, w[2 * TP_HALF];
    for (int d = -TP_HALF + 1; d <= TP_HALF; d++) {
      double u = p / 4.0 - d; /* distance from tap x[i + d] to t = i + p/4 */
      double sinc = sin(M_PI * u) / (M_PI * u), win = 0.5 + 0.5 * cos(M_PI * u / TP_HALF);
      w[d + TP_HALF - 1] = sinc * win;
      sum += sinc * win;
    }
    double g = 0;
    for (int k = 0; k < 2 * TP_HALF; k++) {
      f->c[p - 1][k] = (float)(w[k] / sum);
      g += fabs((double)f->c[p - 1][k]);
    }
    if (g > f->gain) f->gain = g;
  }
  f->bound = f->gain * (1.0 + 1e-5);
}

/* Largest |interpolated x| at i + p/4 (p = 1, 2, 3) for the nb samples
 * of a block, folded into peak; buf holds the block with its neighbours:
 * buf[j] = x[i0 + j - (TP_HALF - 1)] for j < nb + 2 * TP_HALF - 1 (zeros
 * outside the signal). The whole-buffer and the streaming measurement
 * both interpolate through here, on blocks at the same offsets, so they
 * compute the same values. */
static inline __attribute__((always_inline)) float tp_interp(const tp_filter *f, const float *buf, size_t nb,
                                                               float peak) {
  float acc[TP_BLOCK];
  for (int p = 0; p < 3; p++) {
    for (size_t j = 0; j < nb; j++) acc[j] = 0;
    for (int k = 0; k < 2 * TP_HALF; k++) {
      float ck = f->c[p][k];
      const float *src = buf + k;
      for (size_t j = 0; j < nb; j++) acc[j] += ck * src[j];
    }
    for (size_t j = 0; j < nb; j++) peak = maxf(peak, fabsf(acc[j]));
  }
  return peak;
}

/* tp_interp for i in [i0, i0 + nb) of x[0..n). */
static float tp_block(const tp_filter *f, const float *x, size_t n, size_t i0, size_t nb, float peak) {
  float buf[TP_BLOCK + 2 * TP_HALF];
  for (size_t j = 0; j < nb + 2 * TP_HALF - 1; j++) {
    long long idx = (long long)(i0 + j) - (TP_HALF - 1);
    buf[j] = idx >= 0 && idx < (long long)n ? x[idx] : 0.0f;
  }
  return tp_interp(f, buf, nb, peak);
}

/* Largest |x| of x[0..n): eight lanes in two vectors (GCC vector
 * extensions; max as compare and select, the same as maxf). */
typedef float v4f __attribute__((vector_size(16)));
typedef int v4i __attribute__((vector_size(16)));

static inline v4f v4_absmax(v4f m, v4f x) {
  x = (v4f)((v4i)x & 0x7fffffff);
  v4i gt = x > m;
  return (v4f)((gt & (v4i)x) | (~gt & (v4i)m));
}

float dx_sample_peak(const float *x, size_t n) {
  v4f m0 = {0, 0, 0, 0}, m1 = m0;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    v4f a, b;
    memcpy(&a, x + i, sizeof a);
    memcpy(&b, x + i + 4, sizeof b);
    m0 = v4_absmax(m0, a), m1 = v4_absmax(m1, b);
  }
  float r = 0;
  for (; i < n; i++) r = maxf(r, fabsf(x[i]));
  for (int j = 0; j < 4; j++) r = maxf(r, maxf(m0[j], m1[j]));
  return r;
}

/* Why skipping is exact. An interpolated value is y = sum_k c_k x_k over
 * the 12 samples around it, so |y| <= sum_k |c_k| |x_k| <= G M, where G is
 * the filter's largest per-phase sum of |c_k| and M the largest |x| among
 * those samples. Evaluated in float, every product and partial sum adds a
 * relative error of at most u = 2^-24, so the computed |y| is at most
 * (1 + 12u / (1 - 12u)) G M < (1 + 1e-5) G M. A block whose samples and
 * 2 * TP_HALF neighbours have max |x| = M with (1 + 1e-5) G M <= peak can
 * therefore not raise the peak, and leaving it out gives the same maximum
 * as interpolating everything (tested against exhaustive). The running
 * peak starts at the largest sample, which counts anyway. One pass takes
 * every block's peak; a block's M is its own peak and the TP_HALF - 1
 * samples before it and TP_HALF after it that its interpolation reads. */
float dx_true_peak(const float *x, size_t n, float floor_peak, int exhaustive) {
  tp_filter f;
  tp_filter_init(&f);
  size_t nblk = (n + TP_BLOCK - 1) / TP_BLOCK;
  float *bp = exhaustive ? NULL : malloc((nblk ? nblk : 1) * sizeof *bp);
  float peak = floor_peak;
  if (!bp) { /* asked for, or no room for the block peaks: interpolate everything */
    peak = maxf(peak, dx_sample_peak(x, n));
    for (size_t i0 = 0; i0 < n; i0 += TP_BLOCK) peak = tp_block(&f, x, n, i0, n - i0 < TP_BLOCK ? n - i0 : TP_BLOCK, peak);
    return peak;
  }
  for (size_t b = 0; b < nblk; b++) {
    size_t i0 = b * TP_BLOCK;
    bp[b] = dx_sample_peak(x + i0, n - i0 < TP_BLOCK ? n - i0 : TP_BLOCK);
    peak = maxf(peak, bp[b]);
  }
  for (size_t b = 0; b < nblk; b++) {
    size_t i0 = b * TP_BLOCK, nb = n - i0 < TP_BLOCK ? n - i0 : TP_BLOCK;
    size_t lo = i0 >= TP_HALF - 1 ? i0 - (TP_HALF - 1) : 0, hi = i0 + nb + TP_HALF;
    if (hi > n) hi = n;
    float m = bp[b];
    for (size_t i = lo; i < i0; i++) m = maxf(m, fabsf(x[i]));
    for (size_t i = i0 + nb; i < hi; i++) m = maxf(m, fabsf(x[i]));
    if (f.bound * m <= peak) continue;
    peak = tp_block(&f, x, n, i0, nb, peak);
  }
  free(bp);
  return peak;
}

/* ---- K-weighting and gating ---- */

typedef struct {
  double b[5], a[5]; /* a[0] = 1 */
} kfilter;

/* The BS.1770 pre-filter and RLB filter at rate sr, multiplied into one
 * fourth-order section (their 48 kHz coefficients are what these
 * analogue parameters give at 48 kHz). */
static void kfilter_init(kfilter *k, double sr) {
  double f0 = 1681.974450955533, G = 3.999843853973347, Q = 0.7071752369554196;
  double K = tan(M_PI * f0 / sr), Vh = pow(10.0, G / 20.0), Vb = pow(Vh, 0.4996667741545416);
  double d = 1.0 + K / Q + K * K;
  double pb[3] = {(Vh + Vb * K / Q + K * K) / d, 2.0 * (K * K - Vh) / d, (Vh - Vb * K / Q + K * K) / d};
  double pa[3] = {1.0, 2.0 * (K * K - 1.0) / d, (1.0 - K / Q + K * K) / d};
  f0 = 38.13547087602444;
  Q = 0.5003270373238773;
  K = tan(M_PI * f0 / sr);
  d = 1.0 + K / Q + K * K;
  double rb[3] = {1.0, -2.0, 1.0};
  double ra[3] = {1.0, 2.0 * (K * K - 1.0) / d, (1.0 - K / Q + K * K) / d};
  memset(k, 0, sizeof *k);
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 3; j++) {
      k->b[i + j] += pb[i] * rb[j];
      k->a[i + j] += pa[i] * ra[j];
    }
}

/* Weight of channel c of ch in the sum over channels (0: left out). */
static double channel_weight(int c, int ch) {
  if (ch == 1) return 1.0;
  if (ch == 4) return c < 2 ? 1.0 : 1.41;
  if (ch == 5) return c < 3 ? 1.0 : 1.41;
  static const double w[6] = {1.0, 1.0, 1.0, 0.0, 1.41, 1.41};
  return c < 6 ? w[c] : 0.0;
}

/* The channels of ch that count (at most six) into idx, their weights
 * into w; returns how many. */
static int weighted_channels(int ch, int idx[6], double w[6]) {
  int nc = 0;
  for (int c = 0; c < ch && nc < 6; c++) {
    double wc = channel_weight(c, ch);
    if (wc > 0) idx[nc] = c, w[nc++] = wc;
  }
  return nc;
}

/* K-weighting of a channel pair in four vector lanes: lanes 0-1 are the
 * two channels over the first half of the sub-blocks, lanes 2-3 the same
 * channels over the second half, so two independent filter chains run
 * side by side (each a chain of dependent multiply-adds). The second
 * half's filter state comes from running the filter over the second
 * before it from rest: the filter's slowest poles (the 38 Hz high-pass,
 * |z| = 0.9946 at 44.1 kHz) forget a starting state by a factor of about
 * 1e-99 within a second, far below double precision, so the halves give
 * the values one pass over the whole track gives. */
typedef double v4d __attribute__((vector_size(32)));

typedef struct {
  v4d s1, s2, s3, s4; /* s1 the newest state */
} kstate;

/* One sample of each lane through the filter; returns the output. */
static inline __attribute__((always_inline)) v4d kstep(const kfilter *k, kstate *st, v4d x) {
  const double *a = k->a, *b = k->b;
  v4d t = x - a[4] * st->s4 - a[3] * st->s3 - a[2] * st->s2;
  v4d nw = t - a[1] * st->s1;
  v4d y = b[0] * nw + b[1] * st->s1 + b[2] * st->s2 + b[3] * st->s3 + b[4] * st->s4;
  st->s4 = st->s3, st->s3 = st->s2, st->s2 = st->s1, st->s1 = nw;
  return y;
}

/* keep the state out of subnormals after silence */
static inline void kstate_flush(kstate *st) {
  v4d *v[4] = {&st->s1, &st->s2, &st->s3, &st->s4};
  for (int j = 0; j < 4; j++)
    for (int l = 0; l < 4; l++)
      if (fabs((*v[j])[l]) < 1e-300) (*v[j])[l] = 0;
}

/* K-weight channels x0 and x1 (x1 may be NULL) of n frames at rate sr
 * and add the sum of squares of each sub-block of len frames, times the
 * channel weights, into sub[0 .. n / len). */
DX_HOT static void kweight_pair(const kfilter *k, const float *x0, const float *x1, double w0, double w1, size_t n,
                                size_t len, int sr, double *sub) {
  size_t nsub = n / len, half = nsub / 2, rest = nsub - half; /* rest >= half */
  const float *y1 = x1 ? x1 : x0;
  kstate st;
  memset(&st, 0, sizeof st);
  /* lanes 2-3 start at rest from the second before sub-block half */
  size_t b0 = half * len, warm = b0 < (size_t)sr ? b0 : (size_t)sr;
  for (size_t i = b0 - warm; i < b0; i++) kstep(k, &st, (v4d){0, 0, x0[i], y1[i]});
  st.s1[0] = st.s1[1] = st.s2[0] = st.s2[1] = st.s3[0] = st.s3[1] = st.s4[0] = st.s4[1] = 0;
  for (size_t s = 0; s < rest; s++) {
    /* sub-block s of the first half (when there is one) beside sub-block
     * half + s of the second */
    int both = s < half;
    size_t oa = s * len, ob = (half + s) * len;
    v4d e = {0, 0, 0, 0};
    for (size_t i = 0; i < len; i++) {
      v4d x = {both ? x0[oa + i] : 0.0, both ? y1[oa + i] : 0.0, x0[ob + i], y1[ob + i]};
      v4d y = kstep(k, &st, x);
      e += y * y;
    }
    kstate_flush(&st);
    if (both) sub[s] += w0 * e[0] + (x1 ? w1 * e[1] : 0.0);
    sub[half + s] += w0 * e[2] + (x1 ? w1 * e[3] : 0.0);
  }
}

static double energy_to_lufs(double e) { return 10.0 * log10(e) - 0.691; }

static int cmp_double(const void *pa, const void *pb) {
  double a = *(const double *)pa, b = *(const double *)pb;
  return (a > b) - (a < b);
}

/* Integrated loudness and loudness range from the weighted sub-block sums. */
static dx_status gate(const double *sub, size_t nsub, size_t len, double *lufs, double *lra) {
  double abs_e = pow(10.0, (ABS_GATE_LUFS + 0.691) / 10.0);
  /* integrated: 400 ms blocks every 100 ms; absolute gate, then relative -10 LU */
  double sum = 0;
  size_t cnt = 0;
  for (size_t j = 3; j < nsub; j++) {
    double e = (sub[j - 3] + sub[j - 2] + sub[j - 1] + sub[j]) / (4.0 * len);
    if (e >= abs_e) sum += e, cnt++;
  }
  if (cnt) {
    double rel = sum / cnt * 0.1, s2 = 0;
    size_t c2 = 0;
    for (size_t j = 3; j < nsub; j++) {
      double e = (sub[j - 3] + sub[j - 2] + sub[j - 1] + sub[j]) / (4.0 * len);
      if (e >= abs_e && e >= rel) s2 += e, c2++;
    }
    if (c2) *lufs = energy_to_lufs(s2 / c2);
  }
  /* range: 3 s short-term windows every 100 ms; absolute gate, relative
   * -20 LU, then the 95th minus the 10th percentile (nearest rank) */
  *lra = 0;
  if (nsub < 30) return DX_OK;
  double *st = malloc((nsub - 29) * sizeof *st);
  if (!st) return DX_ERR_NOMEM;
  size_t m = 0;
  double run = 0, stsum = 0;
  for (size_t j = 0; j < nsub; j++) {
    run += sub[j];
    if (j >= 30) run -= sub[j - 30];
    if (j < 29) continue;
    double e = run / (30.0 * len);
    if (e >= abs_e) st[m++] = e, stsum += e;
  }
  if (m) {
    qsort(st, m, sizeof *st, cmp_double);
    double rel = stsum / m * 0.01;
    size_t first = 0;
    while (first < m && st[first] < rel) first++;
    size_t k = m - first;
    if (k) {
      double lo = st[first + (size_t)((k - 1) * 0.1 + 0.5)], hi = st[first + (size_t)((k - 1) * 0.95 + 0.5)];
      *lra = energy_to_lufs(hi) - energy_to_lufs(lo);
    }
  }
  free(st);
  return DX_OK;
}

dx_status dx_loudness_measure(const dx_audio *a, double *lufs, double *lra, double *true_peak_db, dx_errbuf *err) {
  *lufs = *lra = *true_peak_db = -INFINITY;
  if (!a || !a->data || a->channels < 1 || a->samplerate < 1) return dx_fail(err, DX_ERR_INVALID, "no audio to measure");
  if (a->frames == 0) return dx_fail(err, DX_ERR_EMPTY, "audio has no samples");
  /* K-weighting's shelf sits at 1.7 kHz: below 8 kHz there is no such
   * measurement; the values stay unknown (-inf) */
  if (a->samplerate < 8000) return DX_OK;
  size_t len = ((size_t)a->samplerate + 5) / 10, nsub = a->frames / len;
  double *sub = calloc(nsub ? nsub : 1, sizeof *sub);
  if (!sub) return dx_fail(err, DX_ERR_NOMEM, "out of memory measuring loudness");
  kfilter k;
  kfilter_init(&k, a->samplerate);
  int ch = a->channels, idx[6] = {0};
  const float *chan[6];
  double w[6] = {0};
  int nc = weighted_channels(ch, idx, w);
  for (int c = 0; c < nc; c++) chan[c] = a->data + (size_t)idx[c] * a->frames;
  for (int c = 0; c < nc; c += 2)
    kweight_pair(&k, chan[c], c + 1 < nc ? chan[c + 1] : NULL, w[c], c + 1 < nc ? w[c + 1] : 0, a->frames, len,
                 a->samplerate, sub);
  dx_status st = gate(sub, nsub, len, lufs, lra);
  free(sub);
  if (st != DX_OK) return dx_fail(err, st, "out of memory measuring loudness range");
  float peak = 0;
  for (int c = 0; c < ch; c++) peak = dx_true_peak(a->data + (size_t)c * a->frames, a->frames, peak, 0);
  *true_peak_db = peak > 0 ? 20.0 * log10(peak) : -INFINITY;
  return DX_OK;
}

/* ---- streaming ---- */

/* The same measurement over a track that arrives in blocks of interleaved
 * frames. The weighted channels run through the K-weighting in groups of
 * four lanes (one pass from the start, no halves: a stream has no second
 * half to start early), each group carrying its filter state, the energy
 * of the sub-block in progress and where in it the stream stands. The true
 * peak keeps for each channel the samples not yet interpolated and the
 * TP_HALF - 1 before them, and interpolates the same TP_BLOCK blocks (at
 * multiples of TP_BLOCK from the start) as dx_true_peak once the TP_HALF
 * samples after a block have arrived; a block is skipped by the same rule,
 * against the peak of everything seen so far (every sample of a block
 * added counts before its interpolation). */
#define LS_GROUPS 2 /* at most six weighted channels, four lanes each */

struct dx_loudness_stream {
  kstate st[LS_GROUPS]; /* first: vector members, the struct is 64-byte aligned */
  v4d e[LS_GROUPS];     /* energy of the sub-block in progress */
  kfilter k;
  tp_filter tp;
  int ch, on;           /* on: rate of at least 8 kHz */
  int ng, nl[LS_GROUPS], ci[LS_GROUPS][4];
  double w[LS_GROUPS][4];
  size_t frames, len, pos; /* frames added; sub-block length; frames into the one in progress */
  double *sub;             /* weighted sums of the finished sub-blocks */
  size_t nsub, cap_sub;
  float peak;
  float *hist;             /* channel c at hist + c * hcap; hist[0] is sample tp_next - (TP_HALF - 1) */
  size_t hcap, hhave, tp_next;
  dx_status fail;          /* a failed _add: _end returns it */
};

/* K-weight the n frames of interleaved block b (ch channels) in lanes
 * ci[0..nl) (the unused lanes repeat ci[0]); finished sub-blocks add their
 * weighted sums into sub[k], sub[k + 1], ... Returns the new position in
 * the sub-block. */
DX_HOT static size_t kweight_group(const kfilter *k, kstate *st, v4d *e, const float *b, int ch, const int *ci,
                                   const double *w, int nl, size_t n, size_t len, size_t pos, double *sub) {
  size_t i = 0;
  v4d acc = *e;
  while (i < n) {
    size_t run = len - pos < n - i ? len - pos : n - i;
    for (size_t j = i; j < i + run; j++) {
      const float *f = b + j * (size_t)ch;
      v4d y = kstep(k, st, (v4d){f[ci[0]], f[ci[1]], f[ci[2]], f[ci[3]]});
      acc += y * y;
    }
    i += run;
    pos += run;
    if (pos == len) {
      double s = 0;
      for (int l = 0; l < nl; l++) s += w[l] * acc[l];
      *sub++ += s;
      acc = (v4d){0, 0, 0, 0};
      kstate_flush(st);
      pos = 0;
    }
  }
  *e = acc;
  return pos;
}

dx_status dx_loudness_stream_begin(int channels, int samplerate, dx_loudness_stream **out, dx_errbuf *err) {
  *out = NULL;
  if (channels < 1 || channels > 64 || samplerate < 1)
    return dx_fail(err, DX_ERR_INVALID, "no audio to measure (%d channels at %d Hz)", channels, samplerate);
  size_t bytes = (sizeof(dx_loudness_stream) + 63) / 64 * 64;
  dx_loudness_stream *s = aligned_alloc(64, bytes);
  if (!s) return dx_fail(err, DX_ERR_NOMEM, "out of memory measuring loudness");
  memset(s, 0, bytes);
  s->ch = channels;
  s->on = samplerate >= 8000; /* as dx_loudness_measure: no K-weighting below 8 kHz */
  s->len = ((size_t)samplerate + 5) / 10;
  kfilter_init(&s->k, samplerate);
  tp_filter_init(&s->tp);
  int idx[6] = {0};
  double w[6] = {0};
  int nc = weighted_channels(channels, idx, w);
  for (int c = 0; c < nc; c++) {
    int g = c / 4, l = c % 4;
    s->ci[g][l] = idx[c];
    s->w[g][l] = w[c];
    s->nl[g] = l + 1;
    s->ng = g + 1;
  }
  for (int g = 0; g < s->ng; g++)
    for (int l = s->nl[g]; l < 4; l++) s->ci[g][l] = s->ci[g][0];
  s->hhave = TP_HALF - 1; /* the zeros before the first sample */
  *out = s;
  return DX_OK;
}

void dx_loudness_stream_free(dx_loudness_stream *s) {
  if (!s) return;
  free(s->sub);
  free(s->hist);
  free(s);
}

/* Room for n more samples (and the TP_HALF zeros at the end) per channel. */
static int hist_reserve(dx_loudness_stream *s, size_t n) {
  if (s->hhave + n + TP_HALF <= s->hcap) return 0;
  size_t cap = s->hhave + n + 2 * TP_BLOCK + 4 * TP_HALF;
  float *h = calloc(cap * (size_t)s->ch, sizeof *h);
  if (!h) return -1;
  for (int c = 0; s->hist && c < s->ch; c++)
    memcpy(h + (size_t)c * cap, s->hist + (size_t)c * s->hcap, s->hhave * sizeof *h);
  free(s->hist);
  s->hist = h;
  s->hcap = cap;
  return 0;
}

/* Interpolate every block whose samples and TP_HALF samples after it (or
 * the end of the track, with final) are there, then drop what no later
 * block reads. */
static void tp_stream_blocks(dx_loudness_stream *s, int final) {
  size_t known = s->tp_next + s->hhave - (TP_HALF - 1), o = 0; /* samples of the track seen */
  if (final)
    for (int c = 0; c < s->ch; c++) memset(s->hist + (size_t)c * s->hcap + s->hhave, 0, TP_HALF * sizeof(float));
  for (;;) {
    size_t nb = known - s->tp_next < TP_BLOCK ? known - s->tp_next : TP_BLOCK;
    if (final ? nb == 0 : s->tp_next + TP_BLOCK + TP_HALF > known) break;
    for (int c = 0; c < s->ch; c++) {
      const float *buf = s->hist + (size_t)c * s->hcap + o;
      float m = dx_sample_peak(buf, nb + 2 * TP_HALF - 1);
      if (s->tp.bound * m > s->peak) s->peak = tp_interp(&s->tp, buf, nb, s->peak);
    }
    s->tp_next += nb;
    o += nb;
  }
  if (!o) return;
  s->hhave -= o;
  for (int c = 0; c < s->ch; c++) {
    float *h = s->hist + (size_t)c * s->hcap;
    memmove(h, h + o, s->hhave * sizeof *h);
  }
}

dx_status dx_loudness_stream_add(dx_loudness_stream *s, const float *block, size_t frames, dx_errbuf *err) {
  if (s->fail != DX_OK) return dx_fail(err, s->fail, "loudness measurement failed before");
  s->frames += frames;
  if (!s->on || !frames) return DX_OK;
  /* sub-blocks */
  size_t need = s->nsub + frames / s->len + 1;
  if (need > s->cap_sub) {
    size_t cap = need > 2 * s->cap_sub ? need : 2 * s->cap_sub;
    double *sub = realloc(s->sub, cap * sizeof *sub);
    if (!sub) return dx_fail(err, s->fail = DX_ERR_NOMEM, "out of memory measuring loudness");
    memset(sub + s->cap_sub, 0, (cap - s->cap_sub) * sizeof *sub);
    s->sub = sub;
    s->cap_sub = cap;
  }
  size_t pos = s->pos;
  for (int g = 0; g < s->ng; g++)
    pos = kweight_group(&s->k, &s->st[g], &s->e[g], block, s->ch, s->ci[g], s->w[g], s->nl[g], frames, s->len, s->pos,
                        s->sub + s->nsub);
  s->nsub += (s->pos + frames) / s->len;
  s->pos = pos;
  /* true peak: the samples themselves, then the blocks they complete */
  s->peak = maxf(s->peak, dx_sample_peak(block, frames * (size_t)s->ch));
  if (hist_reserve(s, frames)) return dx_fail(err, s->fail = DX_ERR_NOMEM, "out of memory measuring true peak");
  for (int c = 0; c < s->ch; c++) {
    float *h = s->hist + (size_t)c * s->hcap + s->hhave;
    for (size_t i = 0; i < frames; i++) h[i] = block[i * (size_t)s->ch + c];
  }
  s->hhave += frames;
  tp_stream_blocks(s, 0);
  return DX_OK;
}

dx_status dx_loudness_stream_end(dx_loudness_stream *s, double *lufs, double *lra, double *true_peak_db,
                                 dx_errbuf *err) {
  *lufs = *lra = *true_peak_db = -INFINITY;
  if (!s) return dx_fail(err, DX_ERR_INVALID, "no loudness measurement");
  dx_status st = s->fail;
  if (st != DX_OK) st = dx_fail(err, st, "out of memory measuring loudness");
  else if (!s->frames) st = dx_fail(err, DX_ERR_EMPTY, "audio has no samples");
  if (st != DX_OK || !s->on) {
    dx_loudness_stream_free(s);
    return st;
  }
  if (hist_reserve(s, 0)) st = DX_ERR_NOMEM;
  if (st == DX_OK) {
    tp_stream_blocks(s, 1);
    *true_peak_db = s->peak > 0 ? 20.0 * log10(s->peak) : -INFINITY;
    st = gate(s->sub, s->nsub, s->len, lufs, lra);
  }
  dx_loudness_stream_free(s);
  if (st != DX_OK) {
    *lufs = *lra = *true_peak_db = -INFINITY;
    return dx_fail(err, st, "out of memory measuring loudness range");
  }
  return DX_OK;
}
