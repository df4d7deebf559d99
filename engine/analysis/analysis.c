/* analysis.c: the analysis pipeline (see dx_analysis.h): decodes a file
 * into the analyzer's own buffer (downmixing each block as it arrives and
 * finding the peak), measures loudness on the original channels, resamples
 * the downmix for the features, then runs the backend's feature ops over
 * the whole track (features_pass.c) and tempo, beats and key on the host
 * from the onset envelopes and the chroma means.
 *
 * Everything between the upload of y and the reductions stays in backend
 * memory. The decoded file, the mono downmix and the resampled signal go
 * to host buffers the analyzer keeps (on the CPU backend the resampler
 * writes straight into the backend's signal buffer), so a worker that
 * analyses track after track allocates nothing once warm. Files longer
 * than params.stream_min_seconds take the streaming path instead
 * (analysis_stream.c), which never holds the decoded channels.
 * Threading: an analyzer is one worker's; with params.threads >= 2 a run
 * starts helper threads: one measures the loudness beside the resampling,
 * then all share the feature work (CPU backend). */
#include <math.h>
#include <pthread.h>
#include <soxr.h>
#include <stdlib.h>
#include <string.h>

#include "analysis_priv.h"
#include "dx_util.h"

void dx_analysis_default_params(dx_analysis_params *p) {
  memset(p, 0, sizeof *p);
  dx_feat_default_params(&p->feat);
  p->max_seconds = 0;
  p->chunk_frames = 1024;
  p->tempo_min_bpm = 60;
  p->tempo_max_bpm = 200;
  p->low_hz = 300;
  p->key_min_hz = 180;
  p->threads = 1;
  p->stream_min_seconds = 1200;
}

void dx_analysis_result_free(dx_analysis_result *r) {
  if (!r) return;
  free(r->beats);
  r->beats = NULL;
  r->n_beats = 0;
}

static void free_buffers(dx_analyzer *a) {
  dx_backend *be = a->be;
  be->free(be, a->y);
  be->free(be, a->feat);
  be->free(be, a->mel);
  be->free(be, a->chroma);
  be->free(be, a->kchroma);
  be->free(be, a->mfcc);
  be->free(be, a->env);
  be->free(be, a->env_low);
  free(a->env_host);
  free(a->env_low_host);
  a->y = a->feat = a->mel = a->chroma = a->kchroma = a->mfcc = a->env = a->env_low = a->env_host = a->env_low_host = NULL;
  a->cap_samples = a->cap_frames = 0;
}

void dx_analyzer_close(dx_analyzer *a) {
  if (!a) return;
  free_buffers(a);
  for (int i = 0; i < DX_AN_MAX_LANES; i++) {
    dx_an_lane *ln = &a->lanes[i];
    if (ln->power) a->be->free(a->be, ln->power);
    if (ln->win && ln->win != ln->win_host) a->be->free(a->be, ln->win);
    free(ln->win_host);
    if (ln->plan) a->be->feat->plan_destroy(ln->plan);
  }
  if (a->key_fb) a->be->free(a->be, a->key_fb);
  free(a->mono);
  free(a->rs);
  dx_dance_free(&a->dance);
  if (a->sx) soxr_delete(a->sx);
  dx_audio_free(&a->dec);
  free(a);
}

void dx_analyzer_trim(dx_analyzer *a) {
  if (!a) return;
  free_buffers(a);
  free(a->mono);
  free(a->rs);
  a->mono = a->rs = NULL;
  a->cap_mono = a->cap_rs = 0;
  dx_dance_free(&a->dance);
  dx_audio_free(&a->dec);
  a->dec_cap = 0;
}

static void cached_free(dx_backend *be, void *state) {
  (void)be;
  dx_analyzer_close(state);
}

/* Every parameter the analyzer's tables and buffers depend on, or its
 * results: equal params can share one analyzer. */
static int params_equal(const dx_analysis_params *a, const dx_analysis_params *b) {
  return !memcmp(&a->feat, &b->feat, sizeof a->feat) && a->max_seconds == b->max_seconds &&
         a->chunk_frames == b->chunk_frames && a->tempo_min_bpm == b->tempo_min_bpm &&
         a->tempo_max_bpm == b->tempo_max_bpm && a->low_hz == b->low_hz && a->key_min_hz == b->key_min_hz &&
         a->threads == b->threads && a->stream_min_seconds == b->stream_min_seconds &&
         !strcmp(a->scratch_dir, b->scratch_dir);
}

void dx_analyzer_cached_trim(dx_backend *be) {
  if (be && be->feat_state && be->feat_state_free == cached_free) dx_analyzer_trim(be->feat_state);
}

dx_status dx_analyzer_cached(dx_backend *be, const dx_analysis_params *p, dx_analyzer **out, dx_errbuf *err) {
  *out = NULL;
  if (!be) return dx_fail(err, DX_ERR_INVALID, "no backend");
  if (be->feat_state && be->feat_state_free == cached_free) {
    dx_analyzer *a = be->feat_state;
    if (params_equal(&a->p, p)) {
      *out = a;
      return DX_OK;
    }
  }
  if (be->feat_state && be->feat_state_free) be->feat_state_free(be, be->feat_state);
  be->feat_state = NULL;
  be->feat_state_free = NULL;
  dx_analyzer *a = NULL;
  dx_status st = dx_analyzer_open(be, p, &a, err);
  if (st != DX_OK) return st;
  be->feat_state = a;
  be->feat_state_free = cached_free;
  *out = a;
  return DX_OK;
}

/* The key is read from a chroma whose filterbank leaves out the bins below
 * key_min_hz: there a semitone is narrower than an FFT bin (10.8 Hz at
 * 22,050 / 2048), so bass notes smear over neighbouring pitch classes. The
 * chroma feature itself stays librosa's. */
static dx_status make_key_filterbank(dx_analyzer *a, dx_errbuf *err) {
  const dx_feat_params *fp = &a->p.feat;
  int nb = a->plan->n_bins;
  size_t bytes = (size_t)fp->n_chroma * nb * sizeof(float);
  float *h = malloc(bytes);
  if (!h) return DX_ERR_NOMEM;
  dx_feat_chroma_filterbank(fp, h);
  int kmin = a->key_bin0;
  for (int c = 0; c < fp->n_chroma; c++)
    for (int k = 0; k < kmin && k < nb; k++) h[(size_t)c * nb + k] = 0;
  dx_status st = a->be->alloc(a->be, bytes, (void **)&a->key_fb);
  if (st == DX_OK) st = a->be->upload(a->be, a->key_fb, h, bytes);
  if (st == DX_OK) st = a->be->sync(a->be);
  free(h);
  return st == DX_OK ? DX_OK : dx_fail(err, st, "cannot make the key filterbank");
}

dx_status dx_analyzer_open(dx_backend *be, const dx_analysis_params *p, dx_analyzer **out, dx_errbuf *err) {
  *out = NULL;
  if (!be || !be->feat || !be->feat->plan_create) return dx_fail(err, DX_ERR_INVALID, "backend has no feature ops");
  if (p->chunk_frames < 1 || p->tempo_min_bpm <= 0 || p->tempo_max_bpm <= p->tempo_min_bpm * 2)
    return dx_fail(err, DX_ERR_INVALID, "bad analysis parameters (chunk or tempo range)");
  if (p->feat.n_mfcc > DX_MAX_MFCC || p->feat.n_chroma != 12 || p->feat.contrast_bands + 1 > DX_CONTRAST_N)
    return dx_fail(err, DX_ERR_INVALID, "analysis supports at most %d MFCCs, 12 chroma bins, %d contrast bands",
                   DX_MAX_MFCC, DX_CONTRAST_N - 1);
  dx_analyzer *a = calloc(1, sizeof *a);
  if (!a) return DX_ERR_NOMEM;
  a->be = be;
  a->p = *p;
  a->p.scratch_dir[sizeof a->p.scratch_dir - 1] = 0;
  a->sig_fd = -1;
  /* Slaney mel band centres: band i peaks at mel point i + 1 of n_mels + 2
   * evenly spaced from 0 to Nyquist; linear (200/3 Hz per mel) below 1 kHz. */
  {
    double f_sp = 200.0 / 3, top = p->feat.sample_rate / 2.0;
    double top_mel = top >= 1000 ? 15.0 + log(top / 1000.0) / (log(6.4) / 27.0) : top / f_sp;
    for (a->n_low = 0; a->n_low < p->feat.n_mels; a->n_low++) {
      double m = top_mel * (a->n_low + 1) / (p->feat.n_mels + 1);
      double hz = m >= 15.0 ? 1000.0 * exp(log(6.4) / 27.0 * (m - 15.0)) : f_sp * m;
      if (hz > p->low_hz) break;
    }
    if (a->n_low < 1) a->n_low = 1;
  }
  a->key_bin0 = (int)ceil(p->key_min_hz * p->feat.n_fft / p->feat.sample_rate);
  /* On the CPU every thread of a run has a lane of its own and takes small
   * blocks of frames; on CUDA one lane takes whole chunks. */
  int cpu = be->kind == DX_DEVICE_CPU;
  a->n_lanes = cpu ? (p->threads < 1 ? 1 : p->threads > DX_AN_MAX_LANES ? DX_AN_MAX_LANES : p->threads) : 1;
  a->block = cpu && p->chunk_frames > DX_AN_CPU_BLOCK ? DX_AN_CPU_BLOCK : p->chunk_frames;
  dx_status st = DX_OK;
  for (int i = 0; i < a->n_lanes && st == DX_OK; i++) {
    st = be->feat->plan_create(be, &p->feat, a->block, &a->lanes[i].plan, err);
    if (st == DX_OK) {
      size_t bytes = (size_t)a->block * a->lanes[i].plan->n_bins * sizeof(float);
      st = be->alloc(be, bytes, (void **)&a->lanes[i].power);
      if (st != DX_OK) dx_fail(err, st, "cannot allocate %zu bytes of spectrogram scratch", bytes);
    }
  }
  if (st == DX_OK) a->plan = a->lanes[0].plan;
  if (st == DX_OK && !be->feat->chroma_power) st = make_key_filterbank(a, err);
  if (st != DX_OK) {
    dx_analyzer_close(a);
    return st;
  }
  *out = a;
  return DX_OK;
}

/* Host buffer of at least n floats, grown with 25 % headroom. */
static int grow_host(float **buf, size_t *cap, size_t n) {
  if (n <= *cap && *buf) return 0;
  free(*buf);
  *cap = n + n / 4;
  *buf = malloc((*cap ? *cap : 1) * sizeof **buf);
  if (!*buf) *cap = 0;
  return *buf ? 0 : -1;
}

/* Make room for n samples (none: n 0) and T frames (with 25 % headroom
 * on growth). */
static dx_status reserve(dx_analyzer *a, size_t n, size_t T, dx_errbuf *err) {
  if (n <= a->cap_samples && T <= a->cap_frames) return DX_OK;
  free_buffers(a);
  dx_backend *be = a->be;
  const dx_feat_params *fp = &a->p.feat;
  size_t cn = n + n / 4, cT = T + T / 4;
  dx_status st = DX_OK;
  if ((cn && (st = be->alloc(be, cn * sizeof(float), (void **)&a->y)) != DX_OK) ||
      (st = be->alloc(be, cT * DX_FCOL_COUNT * sizeof(float), (void **)&a->feat)) != DX_OK ||
      (st = be->alloc(be, cT * fp->n_mels * sizeof(float), (void **)&a->mel)) != DX_OK ||
      (st = be->alloc(be, cT * fp->n_chroma * sizeof(float), (void **)&a->chroma)) != DX_OK ||
      (st = be->alloc(be, cT * fp->n_chroma * sizeof(float), (void **)&a->kchroma)) != DX_OK ||
      (st = be->alloc(be, cT * fp->n_mfcc * sizeof(float), (void **)&a->mfcc)) != DX_OK ||
      (st = be->alloc(be, cT * sizeof(float), (void **)&a->env)) != DX_OK ||
      (st = be->alloc(be, cT * sizeof(float), (void **)&a->env_low)) != DX_OK ||
      !(a->env_host = malloc(cT * sizeof(float))) || !(a->env_low_host = malloc(cT * sizeof(float)))) {
    free_buffers(a);
    return dx_fail(err, st != DX_OK ? st : DX_ERR_NOMEM, "cannot allocate analysis buffers for %zu frames", T);
  }
  a->cap_samples = cn;
  a->cap_frames = cT;
  return DX_OK;
}

static dx_status progress_at(dx_analysis_progress_fn fn, void *ud, int pct) { return fn ? fn(ud, pct) : DX_OK; }

void dx_an_loud_run(dx_an_loud_job *j) {
  double t0 = dx_now();
  j->st = dx_loudness_measure(j->audio, &j->lufs, &j->lra, &j->tp, &j->err);
  j->secs = dx_now() - t0;
}

static dx_status loud_finish(const dx_an_loud_job *j, dx_analysis_result *r, dx_errbuf *err) {
  if (j->st != DX_OK) {
    if (err) *err = j->err;
    return j->st;
  }
  r->lufs = j->lufs;
  r->lra = j->lra;
  r->true_peak_db = j->tp;
  r->t_loudness = j->secs;
  return DX_OK;
}

/* Mean of the channels of frames [i0, i0 + n) of planar audio into
 * mono[i0 ..]: channel 0, plus each further channel, times 1 / channels
 * (the order librosa.to_mono's mean gives in float32 for two channels). */
static void downmix_range(const dx_audio *audio, float *mono, size_t i0, size_t n) {
  size_t N = audio->frames;
  float *m = mono + i0;
  memcpy(m, audio->data + i0, n * sizeof *m);
  for (int c = 1; c < audio->channels; c++) {
    const float *x = audio->data + (size_t)c * N + i0;
    for (size_t i = 0; i < n; i++) m[i] += x[i];
  }
  if (audio->channels > 1) {
    float inv = 1.0f / (float)audio->channels;
    for (size_t i = 0; i < n; i++) m[i] *= inv;
  }
}

/* downmix_range for n interleaved frames b (ch channels) into m[0..n):
 * the same float operations in the same order. */
void dx_an_downmix(const float *b, int ch, size_t n, float *m) {
  if (ch == 1) {
    memcpy(m, b, n * sizeof *m);
  } else if (ch == 2) {
    float inv = 1.0f / 2.0f;
    for (size_t i = 0; i < n; i++) m[i] = (b[2 * i] + b[2 * i + 1]) * inv;
  } else {
    float inv = 1.0f / (float)ch;
    for (size_t i = 0; i < n; i++) {
      float s = b[i * ch];
      for (int c = 1; c < ch; c++) s += b[i * ch + c];
      m[i] = s * inv;
    }
  }
}

/* The analyzer's soxr HQ resampler from rate sr to the analysis rate,
 * ready for a new track: kept between tracks and cleared for each. */
dx_status dx_an_resample_begin(dx_analyzer *a, int sr, dx_errbuf *err) {
  soxr_error_t e = NULL;
  if (a->sx && (a->sx_rate != sr || soxr_clear(a->sx))) {
    soxr_delete(a->sx);
    a->sx = NULL;
  }
  if (!a->sx) {
    soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
    soxr_quality_spec_t q = soxr_quality_spec(SOXR_HQ, 0);
    a->sx = soxr_create(sr, a->p.feat.sample_rate, 1, &e, &io, &q, NULL);
    if (!a->sx) return dx_fail(err, DX_ERR_INTERNAL, "resampling failed: %s", e ? e : "soxr_create");
    a->sx_rate = sr;
  }
  return DX_OK;
}

/* The resampler is fed in chunks of DX_AN_RESAMPLE_CHUNK input samples (its
 * buffers stay small instead of growing with the track): each call takes
 * the next min(n - pos, DX_AN_RESAMPLE_CHUNK) samples and leaves room for the
 * rest of y, whether the track is all there or arrives in blocks, so the
 * calls and their output are the same both ways. */
dx_status dx_an_resample_feed(dx_analyzer *a, const float *mono, size_t base, size_t avail, size_t n, float *y,
                              size_t y_base, size_t y_cap, size_t olen, dx_an_rs *rs, dx_errbuf *err) {
  size_t y_end = y_base + y_cap < olen ? y_base + y_cap : olen;
  while (!rs->done) {
    size_t take = n - rs->pos < DX_AN_RESAMPLE_CHUNK ? n - rs->pos : DX_AN_RESAMPLE_CHUNK, used = 0, made = 0;
    if (rs->opos < olen && rs->pos + take > avail) return DX_OK; /* wait for more input */
    if (rs->opos < olen) {
      if (rs->opos >= y_end) return DX_OK; /* y is full */
      /* no input left: a NULL input flushes what the filter still holds */
      soxr_error_t e = soxr_process(a->sx, take ? mono + (rs->pos - base) : NULL, take, &used, y + (rs->opos - y_base),
                                    y_end - rs->opos, &made);
      if (e) return dx_fail(err, DX_ERR_INTERNAL, "resampling failed: %s", e);
      rs->pos += used;
      rs->opos += made;
    }
    if (rs->opos >= olen || (!take && !made)) {
      /* a last sample or two soxr leaves unwritten are zeros */
      for (; rs->opos < y_end; rs->opos++) y[rs->opos - y_base] = 0.0f;
      if (rs->opos < olen) return DX_OK; /* the rest of the zeros after y is emptied */
      rs->done = 1;
    }
  }
  return DX_OK;
}

/* soxr HQ from rate sr to the analysis rate, mono[0..n) into y[0..olen). */
static dx_status resample(dx_analyzer *a, int sr, const float *mono, size_t n, float *y, size_t olen, dx_errbuf *err) {
  dx_an_rs rs = {0, 0, 0};
  dx_status st = dx_an_resample_begin(a, sr, err);
  return st == DX_OK ? dx_an_resample_feed(a, mono, 0, n, n, y, 0, olen, olen, &rs, err) : st;
}

size_t dx_an_window_len(const dx_analyzer *a) {
  return (size_t)(a->block - 1) * a->p.feat.hop + (size_t)a->p.feat.n_fft;
}

/* Every lane's window for a streamed run (kept for the next). */
static dx_status reserve_windows(dx_analyzer *a, dx_errbuf *err) {
  size_t bytes = dx_an_window_len(a) * sizeof(float);
  for (int i = 0; i < a->n_lanes; i++) {
    dx_an_lane *ln = &a->lanes[i];
    if (!ln->win_host && !(ln->win_host = malloc(bytes))) return dx_fail(err, DX_ERR_NOMEM, "out of memory");
    if (a->be->kind == DX_DEVICE_CPU) ln->win = ln->win_host; /* backend memory is host memory */
    dx_status st = ln->win ? DX_OK : a->be->alloc(a->be, bytes, (void **)&ln->win);
    if (st != DX_OK) return dx_fail(err, st, "cannot allocate %zu bytes of signal window", bytes);
  }
  return DX_OK;
}

/* Where the features' signal goes for audio of n frames at rate sr:
 * reserves the analyzer's buffers for olen output samples and picks the
 * downmix's destination (the signal buffer itself when no resampling is
 * needed; with mono NULL no downmix buffer is made; with y NULL, a
 * streamed run, only the per-frame buffers and the lanes' windows). */
dx_status dx_an_prepare(dx_analyzer *a, int sr, size_t n, size_t *olen, float **mono, float **y, dx_errbuf *err) {
  int rate = a->p.feat.sample_rate, same = sr == rate;
  *olen = same ? n : (size_t)(n * ((double)rate / sr) + 0.5);
  if (*olen == 0) return dx_fail(err, DX_ERR_EMPTY, "the audio is too short to analyse");
  dx_status st = reserve(a, y ? *olen : 0, dx_feat_frame_count(*olen, a->p.feat.hop), err);
  if (st != DX_OK) return st;
  if (!y) return reserve_windows(a, err);
  /* on the CPU backend a->y is host memory: the signal goes straight there */
  int direct = a->be->kind == DX_DEVICE_CPU;
  if (!direct && grow_host(&a->rs, &a->cap_rs, *olen)) return dx_fail(err, DX_ERR_NOMEM, "out of memory");
  *y = direct ? a->y : a->rs;
  if (!mono) return DX_OK;
  *mono = *y;
  if (!same) {
    if (grow_host(&a->mono, &a->cap_mono, n)) return dx_fail(err, DX_ERR_NOMEM, "out of memory");
    *mono = a->mono;
  }
  return DX_OK;
}

/* The run after decoding: silence check, loudness (on a helper with
 * threads >= 2), librosa.load's downmix (unless mono is already there)
 * and soxr HQ resampling to the analysis rate, the features, tempo, key. */
static dx_status run_decoded(dx_analyzer *a, const dx_audio *audio, unsigned features, int mono_ready, float peak,
                             dx_analysis_progress_fn progress, void *ud, dx_analysis_result *r, dx_errbuf *err) {
  if (!(peak > 1e-7f)) return dx_fail(err, DX_ERR_SILENT, "the audio is silent (peak %.3g)", (double)peak);
  dx_status st;
  if ((st = progress_at(progress, ud, 5)) != DX_OK) return st;
  dx_an_loud_job lj = {.audio = audio};
  if (!(features & ~DX_AF_LOUDNESS)) {
    dx_an_loud_run(&lj);
    if ((st = loud_finish(&lj, r, err)) != DX_OK) return st;
    return progress_at(progress, ud, 100);
  }
  double t0 = dx_now();
  size_t n = audio->frames, olen;
  float *mono, *y;
  if ((st = dx_an_prepare(a, audio->samplerate, n, &olen, &mono, &y, err)) != DX_OK) return st;
  /* Loudness reads the original channels only: with threads >= 2 it runs
   * on a helper beside the resampling, and the helper then joins the
   * feature work. */
  int loud = (features & DX_AF_LOUDNESS) != 0;
  dx_an_run *run = NULL;
  if ((st = dx_an_run_begin(a, loud && a->p.threads >= 2 ? &lj : NULL, &run)) != DX_OK) {
    dx_an_run_end(run);
    return dx_fail(err, st, "out of memory");
  }
  if (loud && !dx_an_run_loud_async(run)) {
    dx_an_loud_run(&lj);
    if (lj.st != DX_OK) {
      dx_an_run_end(run);
      return loud_finish(&lj, r, err);
    }
    t0 = dx_now();
  }
  if (!mono_ready) downmix_range(audio, mono, 0, n);
  if (mono != y && (st = resample(a, audio->samplerate, mono, n, y, olen, err)) != DX_OK) {
    dx_an_run_end(run);
    return st;
  }
  r->t_resample = dx_now() - t0;
  if (features & DX_AF_TEMPO) {
    dx_dance_begin(&a->dance, a->p.feat.sample_rate);
    if (dx_dance_feed(&a->dance, y, olen) != DX_OK) {
      dx_an_run_end(run);
      return dx_fail(err, DX_ERR_NOMEM, "out of memory");
    }
  }
  if ((st = dx_an_run_features(a, run, y, olen, features, progress, ud, r, err)) != DX_OK) return st;
  if (loud && (st = loud_finish(&lj, r, err)) != DX_OK) return st;
  return progress_at(progress, ud, 100);
}

dx_status dx_an_run_features(dx_analyzer *a, dx_an_run *run, const float *y, size_t n, unsigned features,
                             dx_analysis_progress_fn progress, void *ud, dx_analysis_result *r, dx_errbuf *err) {
  dx_status st = progress_at(progress, ud, 20);
  if (st == DX_OK) st = dx_an_features(a, run, y, n, features, progress, ud, r, err);
  dx_an_run_end(run); /* joins the helpers (the loudness one too) */
  if (st != DX_OK) return st;
  if (features & DX_AF_TEMPO) {
    double fps = (double)a->p.feat.sample_rate / a->p.feat.hop;
    if ((st = dx_tempo_analyze(a->env_host, a->env_low_host, r->frames, fps, r->duration, &a->p, r)) != DX_OK)
      return st;
    /* the deviations were gathered as the signal was made (run_decoded, or the stream's flush) */
    if (dx_danceability(a->dance.s, a->dance.n, &r->danceability) != DX_OK)
      return dx_fail(err, DX_ERR_NOMEM, "out of memory");
  }
  if (features & DX_AF_KEY) dx_key_detect(a->key_chroma, r);
  return DX_OK;
}

/* Fills the fields of r every run has, checks the request (audio: with
 * header_only, its data may be NULL). */
dx_status dx_an_run_start(dx_analyzer *a, const dx_audio *audio, int header_only, unsigned *features,
                          dx_analysis_result *r, dx_errbuf *err) {
  double keep_decode = r->t_decode;
  memset(r, 0, sizeof *r);
  r->t_decode = keep_decode;
  r->key_index = -1;
  r->lufs = r->lra = r->true_peak_db = -INFINITY;
  *features &= DX_AF_ALL;
  if (!*features) return dx_fail(err, DX_ERR_INVALID, "no features requested");
  if (!audio || (!audio->data && !header_only) || audio->channels < 1 || audio->samplerate < 1)
    return dx_fail(err, DX_ERR_INVALID, "no audio");
  if (audio->frames == 0) return dx_fail(err, DX_ERR_EMPTY, "the audio has no samples");
  r->features = *features;
  r->sample_rate = audio->samplerate;
  r->channels = audio->channels;
  r->duration = (double)audio->frames / audio->samplerate;
  r->analysis_rate = a->p.feat.sample_rate;
  if (a->p.max_seconds > 0 && r->duration > a->p.max_seconds)
    return dx_fail(err, DX_ERR_TOO_LONG, "the audio lasts %.0f s, longer than the %.0f s allowed", r->duration,
                   a->p.max_seconds);
  return DX_OK;
}

dx_status dx_analyzer_run(dx_analyzer *a, const dx_audio *audio, unsigned features, dx_analysis_progress_fn progress,
                          void *ud, dx_analysis_result *out, dx_errbuf *err) {
  dx_status st = dx_an_run_start(a, audio, 0, &features, out, err);
  if (st != DX_OK) return st;
  float peak = dx_sample_peak(audio->data, audio->frames * (size_t)audio->channels);
  return run_decoded(a, audio, features, 0, peak, progress, ud, out, err);
}

/* Decoding a file: each block is downmixed into the features' buffer and
 * its peak taken while it is in cache. */
typedef struct {
  dx_analyzer *a;
  float *mono;
  float peak;
  int want_mono;
  dx_errbuf *err;
} decode_state;

static dx_status on_block(void *ud, const dx_audio *au, const float *b, size_t frame0, size_t n) {
  decode_state *d = ud;
  int ch = au->channels;
  size_t total = n * (size_t)ch;
  float pk = dx_sample_peak(b, total);
  if (pk > d->peak) d->peak = pk;
  if (!d->want_mono) return DX_OK;
  if (frame0 == 0) {
    size_t olen;
    float *y;
    dx_status st = dx_an_prepare(d->a, au->samplerate, au->frames, &olen, &d->mono, &y, d->err);
    if (st != DX_OK) return st;
  }
  dx_an_downmix(b, ch, n, d->mono + frame0);
  return DX_OK;
}

dx_status dx_analyzer_run_file(dx_analyzer *a, const char *path, unsigned features, dx_analysis_progress_fn progress,
                               void *ud, dx_analysis_result *out, dx_errbuf *err) {
  double t0 = dx_now();
  memset(out, 0, sizeof *out);
  dx_audio_file *f = NULL;
  dx_audio_info info;
  dx_status st = dx_audio_file_open(path, a->p.max_seconds, &f, &info, err);
  if (st != DX_OK) return st;
  if (a->p.stream_min_seconds >= 0 && info.duration > a->p.stream_min_seconds) {
    st = dx_an_run_stream(a, f, &info, features, progress, ud, out, err);
    dx_audio_file_close(f);
    return st;
  }
  decode_state d = {.a = a, .want_mono = (features & DX_AF_ALL & ~DX_AF_LOUDNESS) != 0, .err = err};
  st = dx_audio_file_decode(f, &a->dec, &a->dec_cap, on_block, &d, err);
  dx_audio_file_close(f);
  if (st != DX_OK) return st;
  out->t_decode = dx_now() - t0;
  if ((st = dx_an_run_start(a, &a->dec, 0, &features, out, err)) != DX_OK) return st;
  return run_decoded(a, &a->dec, features, d.want_mono, d.peak, progress, ud, out, err);
}
