/* danceability.c: danceability by detrended fluctuation analysis (DFA) of
 * the signal's short-time deviation (Streich and Herrera, "Detrended
 * Fluctuation Analysis of Music Signals: Danceability Estimation and
 * further Semantic Characterization", AES 118th Convention, 2005), with the
 * conventions of Essentia's Danceability, whose values it reproduces:
 *
 *  - frames of int(0.01 x rate) samples (10 ms), back to back; a partial
 *    last frame is left out; s[i] = the population standard deviation of
 *    frame i;
 *  - the profile y = cumulative sum of s - mean(s);
 *  - time scales tau (in frames) = int(t / 10) for t = 310 ms, x 1.1 each
 *    step, while t <= 8800 ms (36 scales from 31 to 871 frames), those
 *    shorter than the track (n > tau);
 *  - F(tau)^2 = the mean squared residual of a least-squares line through
 *    y[k .. k + tau), summed over k = 0, jump, 2 jump, ... < n - tau with
 *    jump = max(tau / 50, 1) (integer division), divided by (n - tau) / jump
 *    (real division);
 *  - alpha between neighbouring scales = log(F(tau') / F(tau)) /
 *    log((tau' + 3) / (tau + 3));
 *  - danceability = 1 / (mean of the alphas): about 2 for uncorrelated
 *    deviations (white noise), 0..3 for most music, higher the more regular.
 *    0 when fewer than two scales fit (under 0.35 s) or some F is 0 (a
 *    perfectly even signal), as Essentia answers.
 *
 * The window sums come from prefix sums, so every window costs O(1) (about
 * 12 n windows in all: 2 ms for a 3-minute track, 40 ms for an hour). They
 * are doubles with the frame index counted from the track's middle; on an
 * hour of noise the result moves by 4e-8 from long double sums. demix
 * computes it on the analysis signal (mono, 22,050 Hz), as its other
 * features; 0.35 s of frames at least. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dx_analysis.h"

#define MIN_TAU_MS 310.0
#define MAX_TAU_MS 8800.0
#define TAU_STEP 1.1
#define MAX_TAUS 64

void dx_dance_begin(dx_dance *d, int sample_rate) {
  int frame = (int)(0.01 * sample_rate);
  if (frame < 1) frame = 1;
  if (frame != d->frame) {
    free(d->part);
    d->part = NULL;
  }
  d->frame = frame;
  d->fill = 0;
  d->n = 0;
}

/* Population standard deviation of one frame, summed in eight lanes (so
 * it vectorises) combined pairwise: the same value however the signal
 * was cut into pieces. */
static double frame_std(const float *x, int n) {
  double s[8] = {0}, q[8] = {0};
  int i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; l++) {
      double v = x[i + l];
      s[l] += v;
      q[l] += v * v;
    }
  for (int l = 0; i < n; i++, l++) {
    double v = x[i];
    s[l] += v;
    q[l] += v * v;
  }
  double sum = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
  double sum2 = ((q[0] + q[1]) + (q[2] + q[3])) + ((q[4] + q[5]) + (q[6] + q[7]));
  double m = sum / n, var = sum2 / n - m * m;
  return var > 0 ? sqrt(var) : 0;
}

static int push(dx_dance *d, double v) {
  if (d->n == d->cap) {
    size_t cap = d->cap ? 2 * d->cap : 4096;
    double *s = realloc(d->s, cap * sizeof *s);
    if (!s) return -1;
    d->s = s;
    d->cap = cap;
  }
  d->s[d->n++] = v;
  return 0;
}

dx_status dx_dance_feed(dx_dance *d, const float *y, size_t n) {
  size_t i = 0;
  if (d->fill) { /* complete the frame the last piece began */
    size_t k = (size_t)(d->frame - d->fill) < n ? (size_t)(d->frame - d->fill) : n;
    memcpy(d->part + d->fill, y, k * sizeof *y);
    d->fill += (int)k;
    i = k;
    if (d->fill < d->frame) return DX_OK;
    if (push(d, frame_std(d->part, d->frame))) return DX_ERR_NOMEM;
    d->fill = 0;
  }
  for (; i + (size_t)d->frame <= n; i += (size_t)d->frame)
    if (push(d, frame_std(y + i, d->frame))) return DX_ERR_NOMEM;
  if (i < n) { /* the start of the next frame waits for the next piece */
    if (!d->part && !(d->part = malloc((size_t)d->frame * sizeof *d->part))) return DX_ERR_NOMEM;
    memcpy(d->part, y + i, (n - i) * sizeof *y);
    d->fill = (int)(n - i);
  }
  return DX_OK;
}

void dx_dance_free(dx_dance *d) {
  free(d->s);
  free(d->part);
  d->s = NULL;
  d->part = NULL;
  d->n = d->cap = 0;
  d->frame = d->fill = 0;
}

/* F(tau) from the prefix sums of y (p1), y^2 (p2) and (j - n/2) y[j] (pj). */
static double fluctuation(const double *p1, const double *p2, const double *pj, size_t n, int tau) {
  int jump = tau / 50 > 1 ? tau / 50 : 1;
  double N = tau, sx = N * (N - 1) / 2, cxx = N * (N * N - 1) / 12, acc = 0;
  for (size_t k = 0; k + (size_t)tau < n; k += (size_t)jump) {
    size_t e = k + (size_t)tau;
    double sy = p1[e] - p1[k], syy = p2[e] - p2[k];
    double sxy = (pj[e] - pj[k]) - ((double)k - (double)(n / 2)) * sy; /* x = j - k */
    double cxy = sxy - sx * sy / N, cyy = syy - sy * sy / N;
    double ss = cyy - cxy * cxy / cxx;
    acc += ss > 0 ? ss / N : 0;
  }
  return sqrt(acc / ((double)(n - (size_t)tau) / jump));
}

dx_status dx_danceability(const double *s, size_t n, double *out) {
  *out = 0;
  int taus[MAX_TAUS], nt = 0;
  for (double t = MIN_TAU_MS; t <= MAX_TAU_MS && nt < MAX_TAUS; t *= TAU_STEP)
    if ((size_t)(int)(t / 10) < n) taus[nt++] = (int)(t / 10);
  if (nt < 2) return DX_OK;
  double *p = malloc(3 * (n + 1) * sizeof *p);
  if (!p) return DX_ERR_NOMEM;
  double *p1 = p, *p2 = p + n + 1, *pj = p + 2 * (n + 1);
  double mean = 0;
  for (size_t i = 0; i < n; i++) mean += s[i];
  mean /= (double)n;
  double y = 0;
  p1[0] = p2[0] = pj[0] = 0;
  for (size_t i = 0; i < n; i++) {
    y += s[i] - mean;
    p1[i + 1] = p1[i] + y;
    p2[i + 1] = p2[i] + y * y;
    pj[i + 1] = pj[i] + ((double)i - (double)(n / 2)) * y;
  }
  double f_prev = fluctuation(p1, p2, pj, n, taus[0]), alpha_sum = 0;
  int ok = f_prev > 0;
  for (int i = 1; i < nt && ok; i++) {
    double f = fluctuation(p1, p2, pj, n, taus[i]);
    ok = f > 0;
    if (ok) alpha_sum += log(f / f_prev) / log((taus[i] + 3.0) / (taus[i - 1] + 3.0));
    f_prev = f;
  }
  free(p);
  double mean_alpha = alpha_sum / (nt - 1);
  if (ok && mean_alpha != 0 && isfinite(mean_alpha)) *out = 1.0 / mean_alpha;
  return DX_OK;
}
