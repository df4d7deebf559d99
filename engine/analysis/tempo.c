/* tempo.c: tempo, beats and onset rate from an onset-strength envelope
 * (host code; the envelope is the one array the backend hands back).
 *
 * 1. Tempogram (librosa.feature.tempogram): the envelope, padded by half a
 *    window with linear ramps to 0, is cut into 8-second windows (hop 1
 *    frame), each Hann-weighted, autocorrelated and normalised by its lag-0
 *    value; the mean over windows is the global periodicity profile.
 * 2. Tempo: librosa's score log1p(1e6 * tg) plus a log-normal prior, with
 *    two changes that remove its octave errors on regular patterns: the
 *    candidates are limited to [tempo_min_bpm, tempo_max_bpm], and the
 *    periods of half and double length are compared by how strongly the
 *    envelope pulses on the beat against half-way between beats (see
 *    pick_octave). The peak lag is refined by parabolic interpolation.
 * 3. Beats: Ellis' dynamic-programming tracker exactly as librosa.beat
 *    (Gaussian local score, tightness 100, last-beat and trimming rules).
 * 4. The tempo is then refined from the tracked beats: the least-squares
 *    slope of beat time against beat number, when it agrees with the
 *    tempogram estimate within 4 %.
 * Threading: no shared state; FFTW plans are made under the planner lock. */
#include <fftw3.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dx_analysis.h"

/* Mean normalised autocorrelation of 8 s windows, lags 0..win-1, into tg. */
static dx_status tempogram_mean(const float *env, size_t n, int win, double *tg) {
  int half = win / 2, nfft = 1;
  while (nfft < 2 * win - 1) nfft <<= 1;
  float *buf = fftwf_malloc(sizeof(float) * nfft);
  fftwf_complex *spec = fftwf_malloc(sizeof(fftwf_complex) * (nfft / 2 + 1));
  float *pad = malloc(sizeof(float) * (n + 2 * (size_t)half + 1));
  float *w = malloc(sizeof(float) * win);
  fftwf_plan fwd = NULL, inv = NULL;
  dx_fftw_planner_lock();
  if (buf && spec) {
    fwd = fftwf_plan_dft_r2c_1d(nfft, buf, spec, FFTW_ESTIMATE);
    inv = fftwf_plan_dft_c2r_1d(nfft, spec, buf, FFTW_ESTIMATE);
  }
  dx_fftw_planner_unlock();
  dx_status st = DX_OK;
  if (!buf || !spec || !pad || !w || !fwd || !inv) {
    st = DX_ERR_NOMEM;
    goto out;
  }
  /* np.pad(mode='linear_ramp', end_values=0): ramps from 0 at the outer
   * edge towards the edge sample, endpoint excluded. */
  for (int i = 0; i < half; i++) {
    pad[i] = env[0] * (float)i / half;
    pad[half + n + i] = env[n - 1] * (float)(half - 1 - i) / half;
  }
  memcpy(pad + half, env, n * sizeof(float));
  dx_feat_hann(win, w);
  memset(tg, 0, sizeof(double) * win);
  /* Windows every `stride` frames: 8-second windows overlap by > 99 %, so
   * the mean over every second one equals the mean over all to well below
   * what moves the peak. */
  int stride = 2;
  size_t used = 0;
  for (size_t t = 0; t < n; t += stride) {
    memset(buf, 0, sizeof(float) * nfft);
    for (int i = 0; i < win; i++) buf[i] = pad[t + i] * w[i];
    fftwf_execute(fwd);
    float *c = (float *)spec; /* interleaved re, im */
    for (int k = 0; k <= nfft / 2; k++) {
      c[2 * k] = c[2 * k] * c[2 * k] + c[2 * k + 1] * c[2 * k + 1];
      c[2 * k + 1] = 0;
    }
    fftwf_execute(inv);
    double a0 = buf[0];
    if (a0 > 0) /* util.normalize(norm=inf): scale by the largest |value|, lag 0 */
      for (int l = 0; l < win; l++) tg[l] += buf[l] / a0;
    used++;
  }
  for (int l = 0; l < win && used; l++) tg[l] /= used;
out:
  dx_fftw_planner_lock();
  if (fwd) fftwf_destroy_plan(fwd);
  if (inv) fftwf_destroy_plan(inv);
  fftwf_free(buf);
  fftwf_free(spec);
  dx_fftw_planner_unlock();
  free(pad);
  free(w);
  return st;
}

static double env_sd(const float *x, size_t n) {
  double m = 0, v = 0;
  for (size_t i = 0; i < n; i++) m += x[i];
  m /= n;
  for (size_t i = 0; i < n; i++) v += (x[i] - m) * (x[i] - m);
  return sqrt(v / n);
}

static double lag_bpm(double lag, double fps) { return 60.0 * fps / lag; }

/* Parabolic peak refinement of f around integer index i. */
static double refine_peak(const double *f, int i, int n) {
  if (i <= 0 || i >= n - 1) return i;
  double a = f[i - 1], b = f[i], c = f[i + 1], d = a - 2 * b + c;
  if (d >= 0) return i;
  double off = 0.5 * (a - c) / d;
  return off > 1 || off < -1 ? i : i + off;
}

/* Mean envelope value at the frames of a pulse train with period `lag`
 * frames and the best phase, and at the mid-points of that best phase. */
static void pulse_strength(const float *env, size_t n, double lag, double *on, double *mid) {
  int P = (int)lround(lag);
  double best = -1, best_mid = 0;
  if (P < 2) {
    *on = *mid = 0;
    return;
  }
  for (int ph = 0; ph < P; ph++) {
    double s = 0, m = 0;
    int cnt = 0, cm = 0;
    for (double t = ph; t < (double)n; t += lag) {
      size_t i = (size_t)lround(t);
      if (i >= n) break;
      /* the largest value within one frame absorbs rounding of the grid */
      float v = env[i];
      if (i > 0 && env[i - 1] > v) v = env[i - 1];
      if (i + 1 < n && env[i + 1] > v) v = env[i + 1];
      s += v;
      cnt++;
      size_t j = (size_t)lround(t + lag / 2);
      if (j < n) {
        float u = env[j];
        if (j > 0 && env[j - 1] > u) u = env[j - 1];
        if (j + 1 < n && env[j + 1] > u) u = env[j + 1];
        m += u;
        cm++;
      }
    }
    if (cnt && s / cnt > best) {
      best = s / cnt;
      best_mid = cm ? m / cm : 0;
    }
  }
  *on = best;
  *mid = best_mid;
}

/* Octave decision between period L and its neighbours L/2 and 2L, from the
 * envelope sampled on beat grids (best phase) and half-way between beats:
 * - faster (L/2): when this grid's mid-points are nearly as strong as its
 *   beats (>= 0.8), they are beats too (e.g. a half-tempo grid landing on
 *   kicks with the snares in between);
 * - slower (2L): when nothing sounds between this grid's beats (mid < 0.2 of
 *   the beats: this grid is the pattern's finest level, its eighths) and
 *   every other beat is weak (< 0.5). A pulse whose beats alternate kick and
 *   snare with hats between them keeps its tempo. */
static double pick_octave(const float *env, size_t n, double lag, double fps, const dx_analysis_params *p) {
  double lag_lo = 60.0 * fps / p->tempo_max_bpm, lag_hi = 60.0 * fps / p->tempo_min_bpm;
  for (int iter = 0; iter < 2; iter++) {
    double on, mid;
    pulse_strength(env, n, lag, &on, &mid);
    if (on <= 0) break;
    /* faster: the mid-points of this grid are beats too */
    if (lag / 2 >= lag_lo && mid >= 0.8 * on) {
      lag /= 2;
      continue;
    }
    /* slower: every other beat is weak, and nothing sounds between this
     * grid's beats (it is the finest level of the pattern, its eighths) */
    if (lag * 2 <= lag_hi && mid < 0.2 * on) {
      double on2, mid2;
      pulse_strength(env, n, lag * 2, &on2, &mid2);
      if (on2 > 0 && mid2 < 0.5 * on2) {
        lag *= 2;
        continue;
      }
    }
    break;
  }
  return lag;
}

/* ---- librosa.beat.beat_track's dynamic programme ---- */

static int is_localmax(const double *x, size_t n, size_t i) {
  double prev = i > 0 ? x[i - 1] : x[0], next = i + 1 < n ? x[i + 1] : x[n - 1];
  return x[i] > prev && x[i] >= next;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Beats (frame indices, ascending) into *out (malloc'd), count in *nb. */
static dx_status beat_track(const float *env, size_t n, double fpb, double tightness, size_t **out, size_t *nb) {
  *out = NULL;
  *nb = 0;
  double *ls = malloc(n * sizeof *ls), *cum = malloc(n * sizeof *cum), *norm = malloc(n * sizeof *norm);
  long *back = malloc(n * sizeof *back);
  char *beat = calloc(n, 1);
  size_t *res = NULL;
  dx_status st = DX_OK;
  if (!ls || !cum || !norm || !back || !beat) {
    st = DX_ERR_NOMEM;
    goto out;
  }
  /* onsets / (std with ddof=1 + tiny) */
  double mean = 0, var = 0;
  for (size_t i = 0; i < n; i++) mean += env[i];
  mean /= n;
  for (size_t i = 0; i < n; i++) var += (env[i] - mean) * (env[i] - mean);
  double sd = n > 1 ? sqrt(var / (n - 1)) : 0;
  for (size_t i = 0; i < n; i++) norm[i] = env[i] / (sd + FLT_MIN);
  /* local score: same-mode convolution with exp(-0.5 (k * 32 / fpb)^2), k in [-fpb, fpb] */
  int F = (int)fpb, K = 2 * F + 1;
  double *win = malloc((size_t)K * sizeof *win);
  if (!win) {
    st = DX_ERR_NOMEM;
    goto out;
  }
  for (int k = 0; k < K; k++) {
    double z = (k - F) * 32.0 / fpb;
    win[k] = exp(-0.5 * z * z);
  }
  for (size_t i = 0; i < n; i++) {
    double s = 0;
    long lo = (long)i + K / 2 - (long)n + 1, hi = (long)i + K / 2;
    if (lo < 0) lo = 0;
    if (hi > K) hi = K;
    for (long k = lo; k < hi; k++) s += win[k] * norm[i + K / 2 - k];
    ls[i] = s;
  }
  free(win);
  double lmax = ls[0];
  for (size_t i = 1; i < n; i++) lmax = fmax(lmax, ls[i]);
  double thresh = 0.01 * lmax;
  int first = 1;
  long half = (long)nearbyint(fpb / 2);
  double lfpb = log(fpb);
  for (size_t i = 0; i < n; i++) {
    double best = -INFINITY;
    long loc_best = -1;
    for (long loc = (long)i - half; loc >= (long)i - 2 * (long)fpb; loc--) {
      if (loc < 0) break;
      double d = log((double)((long)i - loc)) - lfpb;
      double sc = cum[loc] - tightness * d * d;
      if (sc > best) {
        best = sc;
        loc_best = loc;
      }
    }
    cum[i] = loc_best >= 0 ? ls[i] + best : ls[i];
    if (first && ls[i] < thresh)
      back[i] = -1;
    else {
      back[i] = loc_best;
      first = 0;
    }
  }
  /* last beat: the last local maximum of cumscore above half the median of them */
  size_t nmax = 0;
  double *mx = norm; /* reuse */
  for (size_t i = 0; i < n; i++)
    if (is_localmax(cum, n, i)) mx[nmax++] = cum[i];
  double med = 0;
  if (nmax) {
    qsort(mx, nmax, sizeof *mx, cmp_double);
    med = nmax % 2 ? mx[nmax / 2] : 0.5 * (mx[nmax / 2 - 1] + mx[nmax / 2]);
  }
  long tail = (long)n - 1;
  for (long i = (long)n - 1; i >= 0; i--)
    if (is_localmax(cum, n, (size_t)i) && cum[i] >= 0.5 * med) {
      tail = i;
      break;
    }
  for (long i = tail; i >= 0; i = back[i]) beat[i] = 1;
  /* trim: drop leading/trailing beats whose local score is at most half the
   * RMS of the Hann(5)-smoothed local score at the beats */
  size_t cnt = 0;
  for (size_t i = 0; i < n; i++) cnt += beat[i];
  if (cnt) {
    double *bs = malloc(cnt * sizeof *bs);
    if (!bs) {
      st = DX_ERR_NOMEM;
      goto out;
    }
    size_t j = 0;
    for (size_t i = 0; i < n; i++)
      if (beat[i]) bs[j++] = ls[i];
    static const double hw[5] = {0, 0.5, 1, 0.5, 0};
    size_t full = cnt + 4, from = 2, to = n + 2 < full ? n + 2 : full;
    double ss = 0;
    size_t m = 0;
    for (size_t q = from; q < to; q++, m++) {
      double v = 0;
      for (int k = 0; k < 5; k++) {
        long idx = (long)q - k;
        if (idx >= 0 && idx < (long)cnt) v += hw[k] * bs[idx];
      }
      ss += v * v;
    }
    free(bs);
    double th = m ? 0.5 * sqrt(ss / m) : 0;
    for (size_t i = 0; i < n && ls[i] <= th; i++) beat[i] = 0;
    for (long i = (long)n - 1; i >= 0 && ls[i] <= th; i--) beat[i] = 0;
  }
  cnt = 0;
  for (size_t i = 0; i < n; i++) cnt += beat[i];
  res = malloc((cnt ? cnt : 1) * sizeof *res);
  if (!res) {
    st = DX_ERR_NOMEM;
    goto out;
  }
  size_t j = 0;
  for (size_t i = 0; i < n; i++)
    if (beat[i]) res[j++] = i;
  *out = res;
  *nb = cnt;
out:
  free(ls);
  free(cum);
  free(norm);
  free(back);
  free(beat);
  return st;
}

/* librosa.onset.onset_detect defaults: envelope scaled to [0, 1]; a peak is
 * the maximum of [n - 30 ms, n + 1 frame), at least delta 0.07 above the mean
 * of [n - 100 ms, n + 100 ms + 1 frame), and more than 30 ms after the last. */
static size_t count_onsets(const float *env, size_t n, double fps) {
  float lo = env[0], hi = env[0];
  for (size_t i = 1; i < n; i++) {
    lo = fminf(lo, env[i]);
    hi = fmaxf(hi, env[i]);
  }
  if (hi - lo <= 0) return 0;
  int pre_max = (int)(0.03 * fps), post_max = 1, pre_avg = (int)(0.10 * fps), post_avg = (int)(0.10 * fps) + 1;
  int wait = (int)(0.03 * fps);
  double scale = 1.0 / (hi - lo);
  size_t count = 0;
  long last = -1000000;
  for (size_t i = 0; i < n; i++) {
    double v = (env[i] - lo) * scale, m = -1, s = 0;
    long a = (long)i - pre_max, b = (long)i + post_max;
    for (long k = a < 0 ? 0 : a; k < b && k < (long)n; k++) m = fmax(m, (env[k] - lo) * scale);
    if (v < m) continue;
    a = (long)i - pre_avg;
    b = (long)i + post_avg;
    long c = 0;
    for (long k = a < 0 ? 0 : a; k < b && k < (long)n; k++, c++) s += (env[k] - lo) * scale;
    if (v < s / c + 0.07) continue;
    if ((long)i - last <= wait) continue;
    count++;
    last = (long)i;
  }
  return count;
}

dx_status dx_tempo_analyze(const float *env, const float *env_low, size_t n, double fps, double duration,
                           const dx_analysis_params *p, dx_analysis_result *r) {
  r->tempo = 0;
  r->tempo_confidence = 0;
  r->onset_rate = 0;
  r->beats = NULL;
  r->n_beats = 0;
  float emax = 0;
  for (size_t i = 0; i < n; i++) emax = fmaxf(emax, env[i]);
  if (n < 4 || emax <= 0) return DX_OK; /* no onsets: no tempo */
  r->onset_rate = duration > 0 ? count_onsets(env, n, fps) / duration : 0;

  int win = (int)floor(8.0 * fps); /* librosa ac_size = 8 s */
  if (win < 8) return DX_OK;
  double *tg = malloc(sizeof(double) * win), *score = malloc(sizeof(double) * win);
  if (!tg || !score) {
    free(tg);
    free(score);
    return DX_ERR_NOMEM;
  }
  /* The periodicity profile is taken on the sum of the full and the
   * low-band envelopes, each scaled to unit deviation: the low band (kick,
   * bass, snare body) marks the beat, the full band adds everything else. */
  float *comb = malloc(n * sizeof *comb);
  if (!comb) {
    free(tg);
    free(score);
    return DX_ERR_NOMEM;
  }
  double sd_full = env_sd(env, n), sd_low = env_low ? env_sd(env_low, n) : 0;
  int use_low = env_low && sd_low > 1e-3 * sd_full;
  for (size_t i = 0; i < n; i++)
    comb[i] = (float)(env[i] / (sd_full + 1e-12) + (use_low ? env_low[i] / sd_low : 0.0));
  dx_status st = tempogram_mean(comb, n, win, tg);
  free(comb);
  if (st != DX_OK) {
    free(tg);
    free(score);
    return st;
  }
  /* librosa.feature.tempo: log1p(1e6 tg) + log-normal prior around 120 BPM
   * (one octave deviation), over the allowed range. */
  int best = -1;
  double tg_sum = 0;
  int tg_cnt = 0;
  for (int l = 1; l < win; l++) {
    double bpm = lag_bpm(l, fps);
    score[l] = -INFINITY;
    if (bpm > p->tempo_max_bpm * 1.02 || bpm < p->tempo_min_bpm * 0.98) continue;
    double lp = log2(bpm / 120.0);
    score[l] = log1p(1e6 * fmax(tg[l], 0)) - 0.5 * lp * lp;
    tg_sum += tg[l];
    tg_cnt++;
    if (best < 0 || score[l] > score[best]) best = l;
  }
  if (best < 0) {
    free(tg);
    free(score);
    return DX_OK;
  }
  double lag = refine_peak(tg, best, win);
  double floor_tg = tg_cnt ? tg_sum / tg_cnt : 0;
  double peak_tg = tg[best];
  lag = pick_octave(use_low ? env_low : env, n, lag, fps, p);
  /* refine the lag again on the tempogram near the chosen period */
  int li = (int)lround(lag);
  if (li >= 1 && li < win - 1) {
    int bi = li;
    for (int d = -1; d <= 1; d++)
      if (li + d >= 1 && li + d < win && tg[li + d] > tg[bi]) bi = li + d;
    lag = refine_peak(tg, bi, win);
    peak_tg = tg[bi];
  }
  free(tg);
  free(score);
  double tempo = lag_bpm(lag, fps);
  r->tempo_confidence = floor_tg < 1 ? fmin(1.0, fmax(0.0, (peak_tg - floor_tg) / (1.0 - floor_tg))) : 0;

  /* beat_track: frames_per_beat = round(fps * 60 / bpm), tightness 100 */
  size_t *bf = NULL, nb = 0;
  double fpb = nearbyint(fps * 60.0 / tempo);
  if (fpb < 1) fpb = 1;
  st = beat_track(env, n, fpb, 100.0, &bf, &nb);
  if (st != DX_OK) return st;
  r->beats = malloc((nb ? nb : 1) * sizeof(double));
  if (!r->beats) {
    free(bf);
    return DX_ERR_NOMEM;
  }
  for (size_t i = 0; i < nb; i++) r->beats[i] = bf[i] / fps;
  r->n_beats = nb;
  free(bf);
  /* least-squares slope of beat time over beat number */
  if (nb >= 8) {
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (size_t i = 0; i < nb; i++) {
      double x = (double)i, yv = r->beats[i];
      sx += x;
      sy += yv;
      sxx += x * x;
      sxy += x * yv;
    }
    double den = nb * sxx - sx * sx;
    if (den > 0) {
      double slope = (nb * sxy - sx * sy) / den;
      double t2 = slope > 0 ? 60.0 / slope : 0;
      if (t2 > 0 && fabs(t2 / tempo - 1) < 0.04) tempo = t2;
    }
  }
  r->tempo = tempo;
  return DX_OK;
}
