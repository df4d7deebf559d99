/* hpss.c: harmonic/percussive separation by median filtering (see
 * dx_hpss.h), block by block over the frames so that long tracks need no
 * track-long spectrogram.
 * Streamed: frames go block by block for every channel; a block reads its
 * samples (with the halo the median along time needs) through the io
 * callback, adds its inverse frames into a window of the harmonic output one
 * block and one n_fft long, and the samples no later frame reaches are
 * normalised and written (harmonic, and percussive = mix - harmonic).
 * Same operations in the same order as over the whole track.
 * Threading: any thread. The channels of a block run side by side on
 * threads of their own (one per channel up to the online cores), each with
 * its own FFT plans and buffers; FFTW plans are made and destroyed under
 * dx_fftw_planner_lock. */
#include "dx_hpss.h"
#include "dx_fftw_lock.h"

#include <fftw3.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dx_util.h"

#define BLOCK_FRAMES 256

dx_hpss_params dx_hpss_default_params(void) {
  dx_hpss_params p;
  memset(&p, 0, sizeof p);
  p.n_fft = 2048;
  p.hop = 512;
  p.win_harm = 31;
  p.win_perc = 31;
  p.power = 2.0;
  return p;
}

/* scipy.ndimage 'reflect' (d c b a | a b c d | d c b a) for index i of n. */
static long reflect(long i, long n) {
  if (n == 1) return 0;
  long period = 2 * n;
  i %= period;
  if (i < 0) i += period;
  return i < n ? i : period - 1 - i;
}

/* Running medians (scipy.ndimage.median_filter's value: the middle of the
 * sorted window) keep the window sorted: each step takes the leaving value
 * out and puts the entering one in with one shift between their places, a
 * few moves instead of a selection over the whole window. The median of a
 * window is the same value however it is found. */

/* v[0..w) = the window's values, sorted (insertion sort: w is small). */
static void win_sort(float *v, int w) {
  for (int i = 1; i < w; i++) {
    float x = v[i];
    int j = i;
    for (; j > 0 && v[j - 1] > x; j--) v[j] = v[j - 1];
    v[j] = x;
  }
}

/* Replace one occurrence of `out` in the sorted v[0..w) by `in`. */
static void win_replace(float *v, int w, float out, float in) {
  int lo = 0, hi = w - 1; /* first index with v[i] >= out; v holds out */
  while (lo < hi) {
    int mid = (lo + hi) / 2;
    if (v[mid] < out)
      lo = mid + 1;
    else
      hi = mid;
  }
  int i = lo;
  if (in > out)
    for (; i + 1 < w && v[i + 1] < in; i++) v[i] = v[i + 1];
  else
    for (; i > 0 && v[i - 1] > in; i--) v[i] = v[i - 1];
  v[i] = in;
}

typedef struct {
  int n_fft, hop, bins;
  float *win;          /* periodic Hann */
  float *frame;        /* n_fft real */
  fftwf_complex *spec; /* bins */
  fftwf_plan fwd, inv;
} fft_state;

static void fft_free(fft_state *s) {
  dx_fftw_planner_lock();
  if (s->fwd) fftwf_destroy_plan(s->fwd);
  if (s->inv) fftwf_destroy_plan(s->inv);
  dx_fftw_planner_unlock();
  fftwf_free(s->frame);
  fftwf_free(s->spec);
  free(s->win);
}

static dx_status fft_init(fft_state *s, int n_fft, int hop) {
  memset(s, 0, sizeof *s);
  s->n_fft = n_fft;
  s->hop = hop;
  s->bins = n_fft / 2 + 1;
  s->win = malloc((size_t)n_fft * sizeof *s->win);
  s->frame = fftwf_malloc((size_t)n_fft * sizeof *s->frame);
  s->spec = fftwf_malloc((size_t)s->bins * sizeof *s->spec);
  if (!s->win || !s->frame || !s->spec) return DX_ERR_NOMEM;
  for (int i = 0; i < n_fft; i++) s->win[i] = (float)(0.5 - 0.5 * cos(2.0 * M_PI * i / n_fft));
  dx_fftw_planner_lock();
  s->fwd = fftwf_plan_dft_r2c_1d(n_fft, s->frame, s->spec, FFTW_ESTIMATE);
  s->inv = fftwf_plan_dft_c2r_1d(n_fft, s->spec, s->frame, FFTW_ESTIMATE);
  dx_fftw_planner_unlock();
  return s->fwd && s->inv ? DX_OK : DX_ERR_NOMEM;
}

/* Spectrum of frame f (centred, zeros outside the track of L samples) into
 * dst; x holds track samples [x0, ...) that cover the frame. */
static void stft_frame(fft_state *s, const float *x, long x0, size_t L, long f, fftwf_complex *dst) {
  long start = f * s->hop - s->n_fft / 2;
  for (int i = 0; i < s->n_fft; i++) {
    long t = start + i;
    s->frame[i] = (t >= 0 && t < (long)L) ? x[t - x0] * s->win[i] : 0.0f;
  }
  fftwf_execute(s->fwd);
  memcpy(dst, s->spec, (size_t)s->bins * sizeof *dst);
}

static float softmask(float x, float ref, double power) {
  float z = x > ref ? x : ref;
  if (z < FLT_MIN) return 0.5f;
  double a = pow(x / z, power), b = pow(ref / z, power);
  return (float)(a / (a + b));
}

/* Sum of squared windows of the frames covering sample t. */
static double window_sumsq(const fft_state *s, long t, long n_frames) {
  long pos = t + s->n_fft / 2; /* position in the padded signal */
  long f_hi = pos / s->hop, f_lo = (pos - s->n_fft) / s->hop + 1;
  if (pos - s->n_fft < 0) f_lo = 0;
  double acc = 0;
  for (long f = f_lo < 0 ? 0 : f_lo; f <= f_hi && f < n_frames; f++) {
    long i = pos - f * s->hop;
    if (i >= 0 && i < s->n_fft) acc += (double)s->win[i] * s->win[i];
  }
  return acc;
}

/* Finalise samples [written, upto): window-sum normalisation of the harmonic
 * ring, percussive = mix - harmonic, hand both to io->write. */
typedef struct {
  const dx_apply_io *io;
  const fft_state *s;
  int channels;
  size_t length;
  long nF;
  float *h;     /* [C][R] harmonic accumulation, sample t at t % R */
  size_t R, written;
  float *stage; /* [2][C][STAGE] */
  float *mixb;  /* [C][STAGE] */
} hpss_out;

#define STAGE 8192

static dx_status hpss_flush(hpss_out *o, size_t upto, dx_errbuf *err) {
  const size_t C = (size_t)o->channels;
  while (o->written < upto) {
    size_t t0 = o->written, pos = t0 % o->R, n = upto - t0;
    if (n > STAGE) n = STAGE;
    if (n > o->R - pos) n = o->R - pos;
    dx_status st = o->io->read(o->io->read_user, t0, n, o->mixb, n, err);
    if (st != DX_OK) return st;
    for (size_t i = 0; i < n; i++) {
      /* the sum is periodic in t with period hop away from the edges */
      double w = window_sumsq(o->s, (long)(t0 + i), o->nF);
      float g = w > FLT_MIN ? (float)(1.0 / w) : 1.0f;
      for (size_t c = 0; c < C; c++) {
        float *hc = o->h + c * o->R + pos;
        float hv = hc[i] * g;
        hc[i] = 0.0f;
        o->stage[c * n + i] = hv;
        o->stage[(C + c) * n + i] = o->mixb[c * n + i] - hv;
      }
    }
    if ((st = o->io->write(o->io->write_user, t0, n, o->stage, err)) != DX_OK) return st;
    o->written += n;
  }
  return DX_OK;
}

/* One channel's work space for a block: its own FFT plans and buffers, so
 * the channels of a block can run on separate threads. */
typedef struct {
  fft_state s;
  fftwf_complex *spec; /* [ext_max][bins] */
  float *mag;          /* [ext_max][bins] */
  float *tmp;          /* a median window */
  float *harm;         /* [BLOCK_FRAMES][bins] medians along time */
} hpss_lane;

static void lane_free(hpss_lane *ln) {
  fft_free(&ln->s);
  fftwf_free(ln->spec);
  free(ln->mag);
  free(ln->tmp);
  free(ln->harm);
}

static dx_status lane_init(hpss_lane *ln, const dx_hpss_params *p, long ext_max) {
  memset(ln, 0, sizeof *ln);
  dx_status st = fft_init(&ln->s, p->n_fft, p->hop);
  const int bins = ln->s.bins, wmax = p->win_harm > p->win_perc ? p->win_harm : p->win_perc;
  ln->spec = fftwf_malloc((size_t)ext_max * bins * sizeof *ln->spec);
  ln->mag = malloc((size_t)ext_max * bins * sizeof *ln->mag);
  ln->tmp = malloc((size_t)wmax * sizeof *ln->tmp);
  ln->harm = malloc((size_t)BLOCK_FRAMES * bins * sizeof *ln->harm);
  return st == DX_OK && ln->spec && ln->mag && ln->tmp && ln->harm ? DX_OK : DX_ERR_NOMEM;
}

/* One channel of frames [f0, f1): x holds its samples from x0 (with the
 * halo of frames e0..e1), the inverse frames are added into h (ring of R). */
typedef struct {
  const dx_hpss_params *p;
  hpss_lane *ln;
  const float *x;
  float *h;
  long f0, f1, e0, e1, x0, nF;
  size_t length, R;
} lane_job;

static void lane_block(const lane_job *j) {
  const dx_hpss_params *p = j->p;
  hpss_lane *ln = j->ln;
  fft_state *s = &ln->s;
  const int bins = s->bins;
  const long hh = p->win_harm / 2, hp = p->win_perc / 2, half = p->n_fft / 2, f0 = j->f0, e0 = j->e0, nF = j->nF;
  const float inv_n = 1.0f / (float)p->n_fft;
  float *tmp = ln->tmp, *mag = ln->mag, *harm = ln->harm;
  for (long f = e0; f < j->e1; f++) {
    fftwf_complex *d = ln->spec + (size_t)(f - e0) * bins;
    stft_frame(s, j->x, j->x0, j->length, f, d);
    float *m = mag + (size_t)(f - e0) * bins;
    for (int k = 0; k < bins; k++) m[k] = hypotf(d[k][0], d[k][1]);
  }
  /* harmonic: for each bin, the median over win_harm frames around each
   * frame of the block (reflected at the track's ends) */
  for (int k = 0; k < bins; k++) {
    for (long i = -hh; i <= hh; i++) tmp[i + hh] = mag[(size_t)(reflect(f0 + i, nF) - e0) * bins + k];
    win_sort(tmp, p->win_harm);
    for (long f = f0; f < j->f1; f++) {
      if (f > f0)
        win_replace(tmp, p->win_harm, mag[(size_t)(reflect(f - 1 - hh, nF) - e0) * bins + k],
                    mag[(size_t)(reflect(f + hh, nF) - e0) * bins + k]);
      harm[(size_t)(f - f0) * bins + k] = tmp[hh];
    }
  }
  for (long f = f0; f < j->f1; f++) {
    const float *m = mag + (size_t)(f - e0) * bins;
    const fftwf_complex *d = ln->spec + (size_t)(f - e0) * bins;
    /* percussive: the median over win_perc bins around each bin (reflected
     * at both ends of the spectrum) */
    for (long i = -hp; i <= hp; i++) tmp[i + hp] = m[reflect(i, bins)];
    win_sort(tmp, p->win_perc);
    for (int k = 0; k < bins; k++) {
      if (k > 0) win_replace(tmp, p->win_perc, m[reflect(k - 1 - hp, bins)], m[reflect(k + hp, bins)]);
      float mk = softmask(harm[(size_t)(f - f0) * bins + k], tmp[hp], p->power);
      s->spec[k][0] = d[k][0] * mk;
      s->spec[k][1] = d[k][1] * mk;
    }
    fftwf_execute(s->inv);
    long start = f * p->hop - half;
    for (int i = 0; i < p->n_fft; i++) {
      long t = start + i;
      if (t >= 0 && t < (long)j->length) j->h[(size_t)t % j->R] += s->frame[i] * inv_n * s->win[i];
    }
  }
}

static void *lane_thread(void *arg) {
  lane_block(arg);
  return NULL;
}

#define MAX_LANES 8

dx_status dx_hpss_stream(int channels, const dx_apply_io *io, const dx_hpss_params *p, dx_errbuf *err) {
  if (!io || !io->read || !io->write || !p || channels < 1) return dx_fail(err, DX_ERR_INVALID, "missing argument");
  const size_t length = io->length;
  if (length == 0) return dx_fail(err, DX_ERR_EMPTY, "empty track");
  if (p->n_fft < 16 || (p->n_fft & 1) || p->hop < 1 || p->hop > p->n_fft || p->win_harm < 1 || !(p->win_harm & 1) ||
      p->win_perc < 1 || !(p->win_perc & 1) || !(p->power > 0))
    return dx_fail(err, DX_ERR_INVALID, "bad hpss parameters");
  const long nF = 1 + (long)(length / (size_t)p->hop), hh = p->win_harm / 2;
  const long half = p->n_fft / 2;
  const long ext_max = BLOCK_FRAMES + 2 * hh;
  const size_t C = (size_t)channels;
  /* channels run side by side, one lane (thread) each, up to the cores */
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  int n_lanes = (int)(C < (size_t)MAX_LANES ? C : MAX_LANES);
  if (cores >= 1 && n_lanes > cores) n_lanes = (int)cores;
  hpss_lane lanes[MAX_LANES];
  memset(lanes, 0, sizeof lanes);
  dx_status st = DX_OK;
  for (int l = 0; l < n_lanes; l++)
    if (lane_init(&lanes[l], p, ext_max) != DX_OK) st = DX_ERR_NOMEM;
  /* input span of a block with its halo, and the open window of the output */
  const size_t span = (size_t)((ext_max - 1) * p->hop + p->n_fft);
  hpss_out o = {io, &lanes[0].s, channels, length, nF, NULL, 0, 0, NULL, NULL};
  o.R = (size_t)(BLOCK_FRAMES * p->hop + p->n_fft + 1);
  float *xin = malloc(span * C * sizeof *xin);
  o.h = calloc(o.R * C, sizeof *o.h);
  o.stage = malloc((size_t)STAGE * 2 * C * sizeof *o.stage);
  o.mixb = malloc((size_t)STAGE * C * sizeof *o.mixb);
  if (st != DX_OK || !xin || !o.h || !o.stage || !o.mixb) {
    st = dx_fail(err, DX_ERR_NOMEM, "out of memory for hpss");
    goto done;
  }
  size_t blocks = (size_t)((nF + BLOCK_FRAMES - 1) / BLOCK_FRAMES), done = 0, total = blocks * C;

  for (long f0 = 0; f0 < nF && st == DX_OK; f0 += BLOCK_FRAMES) {
    long f1 = f0 + BLOCK_FRAMES < nF ? f0 + BLOCK_FRAMES : nF;
    long e0 = f0 - hh < 0 ? 0 : f0 - hh, e1 = f1 + hh > nF ? nF : f1 + hh;
    /* samples [x0, x0 + span) cover every frame of e0..e1 */
    long x0 = e0 * p->hop - half;
    long lo = x0 < 0 ? 0 : x0, hi = x0 + (long)span < (long)length ? x0 + (long)span : (long)length;
    for (size_t c = 0; c < C; c++) memset(xin + c * span, 0, span * sizeof *xin);
    if (hi > lo && (st = io->read(io->read_user, (size_t)lo, (size_t)(hi - lo), xin + (lo - x0), span, err)) != DX_OK)
      break;
    for (size_t c0 = 0; c0 < C && st == DX_OK; c0 += (size_t)n_lanes) {
      lane_job jobs[MAX_LANES];
      int n = (int)(C - c0 < (size_t)n_lanes ? C - c0 : (size_t)n_lanes);
      for (int l = 0; l < n; l++)
        jobs[l] = (lane_job){p, &lanes[l], xin + (c0 + l) * span, o.h + (c0 + l) * o.R, f0, f1, e0, e1, x0, nF,
                             length, o.R};
      dx_run_side_by_side(lane_thread, jobs, sizeof *jobs, n);
      done += (size_t)n;
      if (p->progress && p->progress(p->progress_user, done, total))
        st = dx_fail(err, DX_ERR_CANCELLED, "separation cancelled");
    }
    /* no frame from f1 on reaches before f1 * hop - n_fft / 2 */
    long fin = f1 >= nF ? (long)length : f1 * p->hop - half;
    if (st == DX_OK && fin > (long)o.written) st = hpss_flush(&o, fin < (long)length ? (size_t)fin : length, err);
  }
done:
  for (int l = 0; l < n_lanes; l++) lane_free(&lanes[l]);
  free(xin);
  free(o.h);
  free(o.stage);
  free(o.mixb);
  return st;
}

dx_status dx_hpss_run(const float *mix, int channels, size_t length, const dx_hpss_params *p, float *out,
                      dx_errbuf *err) {
  if (!mix || !out) return dx_fail(err, DX_ERR_INVALID, "missing argument");
  dx_apply_mem m = {mix, out, length, channels, 2 * channels}; /* harmonic, percussive */
  dx_apply_io io;
  dx_apply_mem_io(&m, &io);
  return dx_hpss_stream(channels, &io, p, err);
}
