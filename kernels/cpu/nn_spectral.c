/* nn_spectral.c: CPU STFT and inverse STFT with torch conventions
 * (dx_nn_ops.h): periodic Hann window, 1/sqrt(nfft) normalisation, the
 * inverse divided by the summed squared window. FFTW3f real transforms; one
 * plan pair per size, cached (planning is locked, execution is reentrant
 * through the new-array execute functions on per-call buffers).
 * Threading: reentrant. */
#include <fftw3.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn_cpu.h"
#include "dx_fftw_lock.h"

#define MAX_PLANS 16

typedef struct {
  int n;
  fftwf_plan r2c, c2r;
  float *window; /* periodic Hann */
} plan_entry;

static plan_entry plans[MAX_PLANS];
static int n_plans;

static const plan_entry *get_plan(int n) {
  const plan_entry *found = NULL;
  dx_fftw_planner_lock(); /* FFTW's planner, and this table */
  for (int i = 0; i < n_plans; i++)
    if (plans[i].n == n) found = &plans[i];
  if (!found && n_plans < MAX_PLANS) {
    float *in = fftwf_malloc(sizeof(float) * (size_t)(n + 2));
    fftwf_complex *out = fftwf_malloc(sizeof(fftwf_complex) * (size_t)(n / 2 + 1));
    float *win = malloc(sizeof(float) * (size_t)n);
    if (in && out && win) {
      plan_entry *e = &plans[n_plans];
      e->r2c = fftwf_plan_dft_r2c_1d(n, in, out, FFTW_ESTIMATE);
      e->c2r = fftwf_plan_dft_c2r_1d(n, out, in, FFTW_ESTIMATE);
      if (e->r2c && e->c2r) {
        for (int i = 0; i < n; i++) win[i] = (float)(0.5 - 0.5 * cos(2.0 * M_PI * i / n));
        e->window = win;
        win = NULL;
        e->n = n;
        found = e;
        n_plans++;
      }
    }
    fftwf_free(in);
    fftwf_free(out);
    free(win);
  }
  dx_fftw_planner_unlock();
  return found;
}

dx_status dx_cpu_stft(dx_backend *be, const float *x, float *y, int batch, long long len, int nfft, int hop,
                      int frame0, int frames, int bins) {
  (void)be;
  if (batch <= 0 || nfft <= 1 || hop <= 0 || frame0 < 0 || frames <= 0 || bins <= 0 || bins > nfft / 2 + 1)
    return DX_ERR_INVALID;
  if ((long long)(frame0 + frames - 1) * hop + nfft > len) return DX_ERR_INVALID;
  const plan_entry *pe = get_plan(nfft);
  if (!pe) return DX_ERR_NOMEM;
  float *in = fftwf_malloc(sizeof(float) * (size_t)(nfft + 2));
  fftwf_complex *out = fftwf_malloc(sizeof(fftwf_complex) * (size_t)(nfft / 2 + 1));
  if (!in || !out) {
    fftwf_free(in);
    fftwf_free(out);
    return DX_ERR_NOMEM;
  }
  const float norm = (float)(1.0 / sqrt((double)nfft));
  for (int b = 0; b < batch; b++) {
    const float *xb = x + (size_t)b * len;
    float *re = y + (size_t)b * 2 * bins * frames, *im = re + (size_t)bins * frames;
    for (int t = 0; t < frames; t++) {
      const float *fr = xb + (size_t)(frame0 + t) * hop;
      for (int i = 0; i < nfft; i++) in[i] = fr[i] * pe->window[i];
      fftwf_execute_dft_r2c(pe->r2c, in, out);
      for (int f = 0; f < bins; f++) {
        re[(size_t)f * frames + t] = out[f][0] * norm;
        im[(size_t)f * frames + t] = out[f][1] * norm;
      }
    }
  }
  fftwf_free(in);
  fftwf_free(out);
  return DX_OK;
}

dx_status dx_cpu_istft(dx_backend *be, const float *z, float *y, int batch, int nfft, int hop, int bins, int frames,
                       int frame0, int frames_total, long long out0, long long out_len) {
  (void)be;
  if (batch <= 0 || nfft <= 1 || hop <= 0 || bins <= 0 || bins > nfft / 2 + 1 || frames <= 0 || frame0 < 0 ||
      frame0 + frames > frames_total || out0 < 0 || out_len <= 0)
    return DX_ERR_INVALID;
  long long full = (long long)(frames_total - 1) * hop + nfft;
  if (out0 + out_len > full) return DX_ERR_INVALID;
  const plan_entry *pe = get_plan(nfft);
  if (!pe) return DX_ERR_NOMEM;
  float *tmp = fftwf_malloc(sizeof(float) * (size_t)(nfft + 2));
  fftwf_complex *spec = fftwf_malloc(sizeof(fftwf_complex) * (size_t)(nfft / 2 + 1));
  double *env = malloc(sizeof(double) * (size_t)out_len);
  if (!tmp || !spec || !env) {
    fftwf_free(tmp);
    fftwf_free(spec);
    free(env);
    return DX_ERR_NOMEM;
  }
  /* squared-window envelope over all frames, on the output window */
  for (long long i = 0; i < out_len; i++) env[i] = 0;
  for (int t = 0; t < frames_total; t++) {
    long long s = (long long)t * hop;
    for (int i = 0; i < nfft; i++) {
      long long o = s + i - out0;
      if (o >= 0 && o < out_len) env[o] += (double)pe->window[i] * pe->window[i];
    }
  }
  const float norm = (float)(1.0 / sqrt((double)nfft)); /* sqrt(n) normalisation times the 1/n of the inverse */
  for (int b = 0; b < batch; b++) {
    const float *re = z + (size_t)b * 2 * bins * frames, *im = re + (size_t)bins * frames;
    float *yb = y + (size_t)b * out_len;
    memset(yb, 0, sizeof(float) * (size_t)out_len);
    for (int t = 0; t < frames; t++) {
      long long s = (long long)(frame0 + t) * hop;
      if (s + nfft <= out0 || s >= out0 + out_len) continue;
      for (int f = 0; f <= nfft / 2; f++) {
        spec[f][0] = f < bins ? re[(size_t)f * frames + t] : 0.0f;
        spec[f][1] = f < bins ? im[(size_t)f * frames + t] : 0.0f;
      }
      fftwf_execute_dft_c2r(pe->c2r, spec, tmp);
      for (int i = 0; i < nfft; i++) {
        long long o = s + i - out0;
        if (o >= 0 && o < out_len) yb[o] += tmp[i] * norm * pe->window[i];
      }
    }
    for (long long i = 0; i < out_len; i++) yb[i] = env[i] > 1e-11 ? (float)(yb[i] / env[i]) : 0.0f;
  }
  fftwf_free(tmp);
  fftwf_free(spec);
  free(env);
  return DX_OK;
}
