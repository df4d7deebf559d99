/* convert.c: resampling (libsoxr), downmix and channel conversion of
 * planar float audio (see dx_audio.h). Thread-safe: no shared state. */
#include <soxr.h>
#include <stdlib.h>
#include <string.h>

#include "dx_audio.h"

static dx_status audio_alloc(dx_audio *out, int channels, int rate, size_t frames) {
  memset(out, 0, sizeof *out);
  out->data = malloc((frames ? frames : 1) * (size_t)channels * sizeof(float));
  if (!out->data) return DX_ERR_NOMEM;
  out->channels = channels;
  out->samplerate = rate;
  out->frames = frames;
  return DX_OK;
}

dx_status dx_audio_resample(const dx_audio *in, int rate, dx_audio *out, dx_errbuf *err) {
  if (rate <= 0 || in->samplerate <= 0) return dx_fail(err, DX_ERR_INVALID, "bad sample rate");
  if (rate == in->samplerate) {
    if (audio_alloc(out, in->channels, rate, in->frames) != DX_OK) return DX_ERR_NOMEM;
    memcpy(out->data, in->data, in->frames * (size_t)in->channels * sizeof(float));
    return DX_OK;
  }
  double ratio = (double)rate / in->samplerate;
  size_t olen = (size_t)(in->frames * ratio + 0.5);
  if (audio_alloc(out, in->channels, rate, olen) != DX_OK) return DX_ERR_NOMEM;
  /* Planar in, planar out: soxr's "split" layouts take one pointer per channel. */
  soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_S, SOXR_FLOAT32_S);
  soxr_quality_spec_t q = soxr_quality_spec(SOXR_HQ, 0);
  const float **ip = malloc(sizeof(float *) * (size_t)in->channels);
  float **op = malloc(sizeof(float *) * (size_t)in->channels);
  if (!ip || !op) {
    free(ip); free(op); dx_audio_free(out);
    return DX_ERR_NOMEM;
  }
  for (int c = 0; c < in->channels; c++) {
    ip[c] = in->data + (size_t)c * in->frames;
    op[c] = out->data + (size_t)c * olen;
  }
  size_t done = 0;
  soxr_error_t e = soxr_oneshot(in->samplerate, rate, (unsigned)in->channels, (const void *)ip, in->frames, NULL,
                                (void *)op, olen, &done, &io, &q, NULL);
  free(ip);
  free(op);
  if (e) {
    dx_audio_free(out);
    return dx_fail(err, DX_ERR_INTERNAL, "resampling failed: %s", e);
  }
  for (int c = 0; c < out->channels; c++) /* a last sample or two may be left unwritten */
    for (size_t i = done; i < olen; i++) out->data[(size_t)c * olen + i] = 0.0f;
  return DX_OK;
}

dx_status dx_audio_downmix(const dx_audio *in, float **mono) {
  float *m = calloc(in->frames ? in->frames : 1, sizeof(float));
  if (!m) return DX_ERR_NOMEM;
  for (int c = 0; c < in->channels; c++) {
    const float *x = in->data + (size_t)c * in->frames;
    for (size_t i = 0; i < in->frames; i++) m[i] += x[i];
  }
  float inv = 1.0f / (float)in->channels;
  for (size_t i = 0; i < in->frames; i++) m[i] *= inv;
  *mono = m;
  return DX_OK;
}

dx_status dx_audio_remix(const dx_audio *in, int channels, dx_audio *out) {
  if (channels <= 0 || in->channels <= 0) return DX_ERR_INVALID;
  if (audio_alloc(out, channels, in->samplerate, in->frames) != DX_OK) return DX_ERR_NOMEM;
  size_t n = in->frames;
  if (channels == in->channels) {
    memcpy(out->data, in->data, n * (size_t)channels * sizeof(float));
  } else if (channels == 1) {
    float *m;
    if (dx_audio_downmix(in, &m) != DX_OK) { dx_audio_free(out); return DX_ERR_NOMEM; }
    memcpy(out->data, m, n * sizeof(float));
    free(m);
  } else if (in->channels == 1) {
    for (int c = 0; c < channels; c++) memcpy(out->data + (size_t)c * n, in->data, n * sizeof(float));
  } else if (in->channels >= channels) {
    memcpy(out->data, in->data, n * (size_t)channels * sizeof(float));
  } else {
    /* Fewer channels than wanted (and more than one): the official code
     * refuses this; demix repeats the last channel rather than fail. */
    for (int c = 0; c < channels; c++) {
      int src = c < in->channels ? c : in->channels - 1;
      memcpy(out->data + (size_t)c * n, in->data + (size_t)src * n, n * sizeof(float));
    }
  }
  return DX_OK;
}
