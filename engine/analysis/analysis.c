/* analysis.c: the analysis pipeline (see dx_analysis.h): checks the audio,
 * measures loudness on the original channels, downmixes and resamples for
 * the features, then drives the backend's feature ops over the whole track:
 *
 *   y --stft_power--> power (a chunk of frames at a time)
 *     power --spectral_frames--> feat[:, centroid..contrast]
 *     power --mel_power--> mel[t]      power --gemm (chroma)--> chroma[t], max-normalised
 *   y --signal_frames--> feat[:, rms, zcr]
 *   mel --power_to_db (global max, top_db 80)--> dB mel --gemm (DCT)--> mfcc
 *                                               dB mel --onset_flux--> env (the one array downloaded)
 *   contrast peak / valley --power_to_db each--> difference
 *   moments of every per-frame column --> means and deviations (host)
 *
 * Everything between the upload of y and the reductions stays in backend
 * memory. Tempo, beats and key are then computed on the host from the
 * envelope and the chroma means. The mono downmix and the resampled
 * signal go to host buffers the analyzer keeps (on the CPU backend the
 * resampler writes straight into the backend's signal buffer), so a worker
 * that analyses track after track allocates nothing once warm.
 * Threading: an analyzer is one worker's; with params.threads >= 2 the
 * loudness runs on a helper thread of the run, beside the features. */
#include <math.h>
#include <pthread.h>
#include <soxr.h>
#include <stdlib.h>
#include <string.h>

#include "dx_analysis.h"
#include "dx_util.h"

struct dx_analyzer {
  dx_backend *be;
  dx_analysis_params p;
  dx_feat_plan *plan;
  /* backend buffers, grown on demand */
  float *y, *power, *feat, *mel, *chroma, *kchroma, *mfcc, *env, *env_low;
  float *key_fb; /* chroma filterbank without the bins below key_min_hz, for the key */
  size_t cap_samples, cap_frames;
  float *env_host, *env_low_host;
  float *mono, *rs; /* host: downmix and resampled signal (rs unused on CPU: a->y is host memory) */
  size_t cap_mono, cap_rs;
  int n_low; /* mel bands whose centre is at most low_hz */
  double key_chroma[12];
};

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
  if (a->power) a->be->free(a->be, a->power);
  if (a->key_fb) a->be->free(a->be, a->key_fb);
  if (a->plan) a->be->feat->plan_destroy(a->plan);
  free(a->mono);
  free(a->rs);
  free(a);
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
         a->threads == b->threads;
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
  int kmin = (int)ceil(a->p.key_min_hz * fp->n_fft / fp->sample_rate);
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
  dx_status st = be->feat->plan_create(be, &p->feat, p->chunk_frames, &a->plan, err);
  if (st == DX_OK) {
    size_t bytes = (size_t)p->chunk_frames * a->plan->n_bins * sizeof(float);
    st = be->alloc(be, bytes, (void **)&a->power);
    if (st != DX_OK) dx_fail(err, st, "cannot allocate %zu bytes of spectrogram scratch", bytes);
  }
  if (st == DX_OK) st = make_key_filterbank(a, err);
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

/* Make room for n samples and T frames (with 25 % headroom on growth). */
static dx_status reserve(dx_analyzer *a, size_t n, size_t T, dx_errbuf *err) {
  if (n <= a->cap_samples && T <= a->cap_frames) return DX_OK;
  free_buffers(a);
  dx_backend *be = a->be;
  const dx_feat_params *fp = &a->p.feat;
  size_t cn = n + n / 4, cT = T + T / 4;
  dx_status st;
  if ((st = be->alloc(be, cn * sizeof(float), (void **)&a->y)) != DX_OK ||
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

#define STEP(x)                                                                                                        \
  do {                                                                                                                 \
    if ((st = (x)) != DX_OK) return dx_fail(err, st, "analysis step failed: %s", #x);                                  \
  } while (0)

static dx_status progress_at(dx_analysis_progress_fn fn, void *ud, int pct) { return fn ? fn(ud, pct) : DX_OK; }

/* The backend part: every per-frame feature of mono y (n samples). */
static dx_status compute_features(dx_analyzer *a, const float *y_host, size_t n, unsigned f,
                                  dx_analysis_progress_fn progress, void *ud, dx_analysis_result *r, dx_errbuf *err) {
  dx_backend *be = a->be;
  const dx_feature_ops *op = be->feat;
  const dx_feat_params *fp = &a->p.feat;
  dx_feat_plan *pl = a->plan;
  dx_status st;
  size_t T = dx_feat_frame_count(n, fp->hop);
  if (T > (size_t)1 << 30) return dx_fail(err, DX_ERR_TOO_LONG, "track too long to analyse");
  int Ti = (int)T, nb = pl->n_bins;
  r->frames = T;
  if ((st = reserve(a, n, T, err)) != DX_OK) return st;

  double t0 = dx_now();
  if (y_host != a->y) {
    STEP(be->upload(be, a->y, y_host, n * sizeof(float)));
    STEP(be->sync(be));
  }
  r->t_transfer += dx_now() - t0;
  t0 = dx_now();

  int need_mel = (f & (DX_AF_TEMPO | DX_AF_MFCC)) != 0;
  int need_chroma = (f & (DX_AF_KEY | DX_AF_CHROMA)) != 0;
  int need_spec = (f & DX_AF_SPECTRAL) != 0;
  int need_sig = (f & (DX_AF_ENERGY | DX_AF_SPECTRAL)) != 0;
  int nbands = fp->contrast_bands + 1;

  if (need_mel || need_chroma || need_spec) {
    for (size_t f0 = 0; f0 < T; f0 += (size_t)a->p.chunk_frames) {
      int nf = (int)(T - f0 < (size_t)a->p.chunk_frames ? T - f0 : (size_t)a->p.chunk_frames);
      STEP(op->stft_power(pl, a->y, n, f0, nf, a->power, nb));
      if (need_spec) STEP(op->spectral_frames(pl, a->power, nb, nf, a->feat + f0 * DX_FCOL_COUNT, DX_FCOL_COUNT));
      /* melspectrogram: mel_fb @ |X|^2 (power 2) */
      if (need_mel)
        STEP(op->mel_power(pl, a->power, nb, nf, a->mel + f0 * fp->n_mels, fp->n_mels));
      /* chroma_stft: chroma_fb @ |X|^2, then each frame scaled by its max */
      if (need_chroma) {
        float *c = a->chroma + f0 * fp->n_chroma;
        STEP(op->gemm_nt(be, nf, fp->n_chroma, nb, a->power, nb, pl->chroma_fb, nb, c, fp->n_chroma));
        STEP(op->rows_normalize_max(be, c, nf, fp->n_chroma, fp->n_chroma));
      }
      if (f & DX_AF_KEY) {
        float *c = a->kchroma + f0 * fp->n_chroma;
        STEP(op->gemm_nt(be, nf, fp->n_chroma, nb, a->power, nb, a->key_fb, nb, c, fp->n_chroma));
        STEP(op->rows_normalize_max(be, c, nf, fp->n_chroma, fp->n_chroma));
      }
      if ((st = progress_at(progress, ud, 20 + (int)(60 * (f0 + nf) / T))) != DX_OK) return st;
    }
  }
  if (need_sig) STEP(op->signal_frames(pl, a->y, n, 0, Ti, a->feat, DX_FCOL_COUNT));

  if (need_mel) {
    /* power_to_db(mel, ref=1, amin=1e-10, top_db=80) */
    float mx;
    STEP(op->col_max(be, a->mel, Ti, fp->n_mels, 0, fp->n_mels, &mx));
    STEP(op->power_to_db(be, a->mel, Ti, fp->n_mels, 0, fp->n_mels, 1e-10f, fp->top_db, mx));
    if (f & DX_AF_MFCC) {
      /* mfcc = dct(S_db, type=2, norm='ortho')[:n_mfcc] */
      STEP(op->gemm_nt(be, Ti, fp->n_mfcc, fp->n_mels, a->mel, fp->n_mels, pl->dct, fp->n_mels, a->mfcc, fp->n_mfcc));
      double mean[DX_MAX_MFCC], sd[DX_MAX_MFCC];
      STEP(op->moments(be, a->mfcc, Ti, fp->n_mfcc, 0, fp->n_mfcc, mean, sd));
      r->n_mfcc = fp->n_mfcc;
      for (int i = 0; i < fp->n_mfcc; i++) r->mfcc[i] = (dx_stat){mean[i], sd[i]};
    }
    if (f & DX_AF_TEMPO) {
      STEP(op->onset_flux(pl, a->mel, Ti, fp->n_mels, fp->n_mels, a->env));
      /* the same flux over the low bands only (kick, bass, snare body) */
      STEP(op->onset_flux(pl, a->mel, Ti, fp->n_mels, a->n_low, a->env_low));
    }
  }
  if (need_spec) {
    /* contrast = power_to_db(peak) - power_to_db(valley), each array
     * clipped at its own max - 80 dB, as librosa does */
    float mx;
    STEP(op->col_max(be, a->feat, Ti, DX_FCOL_COUNT, DX_FCOL_PEAK0, nbands, &mx));
    STEP(op->power_to_db(be, a->feat, Ti, DX_FCOL_COUNT, DX_FCOL_PEAK0, nbands, 1e-10f, fp->top_db, mx));
    STEP(op->col_max(be, a->feat, Ti, DX_FCOL_COUNT, DX_FCOL_VALLEY0, nbands, &mx));
    STEP(op->power_to_db(be, a->feat, Ti, DX_FCOL_COUNT, DX_FCOL_VALLEY0, nbands, 1e-10f, fp->top_db, mx));
    STEP(op->cols_sub(be, a->feat, Ti, DX_FCOL_COUNT, DX_FCOL_PEAK0, DX_FCOL_PEAK0, DX_FCOL_VALLEY0, nbands));
    double mean[DX_FCOL_COUNT], sd[DX_FCOL_COUNT];
    STEP(op->moments(be, a->feat, Ti, DX_FCOL_COUNT, 0, DX_FCOL_PEAK0 + nbands, mean, sd));
    r->centroid = (dx_stat){mean[DX_FCOL_CENTROID], sd[DX_FCOL_CENTROID]};
    r->bandwidth = (dx_stat){mean[DX_FCOL_BANDWIDTH], sd[DX_FCOL_BANDWIDTH]};
    r->rolloff = (dx_stat){mean[DX_FCOL_ROLLOFF], sd[DX_FCOL_ROLLOFF]};
    r->flatness = (dx_stat){mean[DX_FCOL_FLATNESS], sd[DX_FCOL_FLATNESS]};
    r->zcr = (dx_stat){mean[DX_FCOL_ZCR], sd[DX_FCOL_ZCR]};
    r->rms = (dx_stat){mean[DX_FCOL_RMS], sd[DX_FCOL_RMS]};
    for (int b = 0; b < nbands; b++) r->contrast[b] = (dx_stat){mean[DX_FCOL_PEAK0 + b], sd[DX_FCOL_PEAK0 + b]};
  } else if (f & DX_AF_ENERGY) {
    double mean, sd;
    STEP(op->moments(be, a->feat, Ti, DX_FCOL_COUNT, DX_FCOL_RMS, 1, &mean, &sd));
    r->rms = (dx_stat){mean, sd};
  }
  if (f & DX_AF_ENERGY) {
    /* energy: the track's frame RMS (root of the mean frame power) in dBFS
     * mapped linearly from -60 dB (0) to 0 dB (1) */
    double ms = r->rms.mean * r->rms.mean + r->rms.std * r->rms.std;
    double db = ms > 0 ? 10.0 * log10(ms) : -200;
    r->energy = fmin(1.0, fmax(0.0, (db + 60.0) / 60.0));
  }
  if (need_chroma) {
    double mean[12], sd[12];
    STEP(op->moments(be, a->chroma, Ti, fp->n_chroma, 0, fp->n_chroma, mean, sd));
    for (int i = 0; i < 12; i++) r->chroma[i] = mean[i];
    if (f & DX_AF_KEY) {
      STEP(op->moments(be, a->kchroma, Ti, fp->n_chroma, 0, fp->n_chroma, mean, sd));
      for (int i = 0; i < 12; i++) a->key_chroma[i] = mean[i];
    }
  }
  r->t_compute += dx_now() - t0;
  if (need_mel && (f & DX_AF_TEMPO)) {
    t0 = dx_now();
    STEP(be->download(be, a->env_host, a->env, T * sizeof(float)));
    STEP(be->download(be, a->env_low_host, a->env_low, T * sizeof(float)));
    r->t_transfer += dx_now() - t0;
  }
  STEP(be->sync(be));
  return DX_OK;
}

typedef struct {
  const dx_audio *audio;
  pthread_t th;
  double lufs, lra, tp, secs;
  dx_status st;
  dx_errbuf err;
} loud_job;

static dx_status loud_run(loud_job *j) {
  double t0 = dx_now();
  j->st = dx_loudness_measure(j->audio, &j->lufs, &j->lra, &j->tp, &j->err);
  j->secs = dx_now() - t0;
  return j->st;
}

static void *loud_main(void *arg) {
  loud_run(arg);
  return NULL;
}

static dx_status loud_finish(const loud_job *j, dx_analysis_result *r, dx_errbuf *err) {
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

/* librosa.load: to mono first (mean of channels), then soxr HQ to the
 * analysis rate (the same recipe as dx_audio_resample, into the analyzer's
 * buffers), then the features, tempo and key. */
static dx_status analyse_signal(dx_analyzer *a, const dx_audio *audio, unsigned features,
                                dx_analysis_progress_fn progress, void *ud, dx_analysis_result *r, dx_errbuf *err) {
  dx_status st;
  double t0 = dx_now();
  int rate = a->p.feat.sample_rate, same = audio->samplerate == rate;
  size_t n = audio->frames, olen = same ? n : (size_t)(n * ((double)rate / audio->samplerate) + 0.5);
  if (olen == 0) return dx_fail(err, DX_ERR_EMPTY, "the audio is too short to analyse");
  if ((st = reserve(a, olen, dx_feat_frame_count(olen, a->p.feat.hop), err)) != DX_OK) return st;
  /* on the CPU backend a->y is host memory: the signal goes straight there */
  int direct = a->be->kind == DX_DEVICE_CPU;
  if (!direct && grow_host(&a->rs, &a->cap_rs, olen)) return dx_fail(err, DX_ERR_NOMEM, "out of memory");
  float *y = direct ? a->y : a->rs;
  float *mono = same ? y : NULL;
  if (!same) {
    if (grow_host(&a->mono, &a->cap_mono, n)) return dx_fail(err, DX_ERR_NOMEM, "out of memory");
    mono = a->mono;
  }
  memcpy(mono, audio->data, n * sizeof *mono);
  for (int c = 1; c < audio->channels; c++) {
    const float *x = audio->data + (size_t)c * n;
    for (size_t i = 0; i < n; i++) mono[i] += x[i];
  }
  if (audio->channels > 1) {
    float inv = 1.0f / (float)audio->channels;
    for (size_t i = 0; i < n; i++) mono[i] *= inv;
  }
  if (!same) {
    soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_S, SOXR_FLOAT32_S);
    soxr_quality_spec_t q = soxr_quality_spec(SOXR_HQ, 0);
    const float *ip[1] = {mono};
    float *op[1] = {y};
    size_t done = 0;
    soxr_error_t e = soxr_oneshot(audio->samplerate, rate, 1, (const void *)ip, n, NULL, (void *)op, olen, &done, &io,
                                  &q, NULL);
    if (e) return dx_fail(err, DX_ERR_INTERNAL, "resampling failed: %s", e);
    for (size_t i = done; i < olen; i++) y[i] = 0.0f; /* a last sample or two may be left unwritten */
  }
  r->t_resample = dx_now() - t0;
  if ((st = progress_at(progress, ud, 20)) != DX_OK) return st;
  if ((st = compute_features(a, y, olen, features, progress, ud, r, err)) != DX_OK) return st;
  if (features & DX_AF_TEMPO) {
    double fps = (double)rate / a->p.feat.hop;
    if ((st = dx_tempo_analyze(a->env_host, a->env_low_host, r->frames, fps, r->duration, &a->p, r)) != DX_OK)
      return st;
  }
  if (features & DX_AF_KEY) dx_key_detect(a->key_chroma, r);
  return DX_OK;
}

dx_status dx_analyzer_run(dx_analyzer *a, const dx_audio *audio, unsigned features, dx_analysis_progress_fn progress,
                          void *ud, dx_analysis_result *out, dx_errbuf *err) {
  dx_analysis_result *r = out;
  double keep_decode = r->t_decode;
  memset(r, 0, sizeof *r);
  r->t_decode = keep_decode;
  r->key_index = -1;
  r->lufs = r->lra = r->true_peak_db = -INFINITY;
  features &= DX_AF_ALL;
  if (!features) return dx_fail(err, DX_ERR_INVALID, "no features requested");
  if (!audio || !audio->data || audio->channels < 1 || audio->samplerate < 1)
    return dx_fail(err, DX_ERR_INVALID, "no audio");
  if (audio->frames == 0) return dx_fail(err, DX_ERR_EMPTY, "the audio has no samples");
  r->features = features;
  r->sample_rate = audio->samplerate;
  r->channels = audio->channels;
  r->duration = (double)audio->frames / audio->samplerate;
  r->analysis_rate = a->p.feat.sample_rate;
  if (a->p.max_seconds > 0 && r->duration > a->p.max_seconds)
    return dx_fail(err, DX_ERR_TOO_LONG, "the audio lasts %.0f s, longer than the %.0f s allowed", r->duration,
                   a->p.max_seconds);
  float peak = 0;
  size_t total = audio->frames * (size_t)audio->channels;
  for (size_t i = 0; i < total; i++) {
    float v = fabsf(audio->data[i]);
    peak = v > peak ? v : peak;
  }
  if (!(peak > 1e-7f)) return dx_fail(err, DX_ERR_SILENT, "the audio is silent (peak %.3g)", (double)peak);
  dx_status st;
  if ((st = progress_at(progress, ud, 5)) != DX_OK) return st;

  /* Loudness reads the original channels only: with threads >= 2 it runs
   * beside the downmix, resampling and features. */
  loud_job lj = {.audio = audio};
  int loud_thread = 0;
  if (features & DX_AF_LOUDNESS) {
    if (a->p.threads >= 2 && (features & ~DX_AF_LOUDNESS) && pthread_create(&lj.th, NULL, loud_main, &lj) == 0)
      loud_thread = 1;
    else if ((st = loud_run(&lj)) != DX_OK)
      return loud_finish(&lj, r, err);
  }
  if (features & ~DX_AF_LOUDNESS) {
    st = analyse_signal(a, audio, features, progress, ud, r, err);
    if (loud_thread) pthread_join(lj.th, NULL);
    if (st != DX_OK) return st;
  }
  if ((features & DX_AF_LOUDNESS) && (st = loud_finish(&lj, r, err)) != DX_OK) return st;
  return progress_at(progress, ud, 100);
}

dx_status dx_analyzer_run_file(dx_analyzer *a, const char *path, unsigned features, dx_analysis_progress_fn progress,
                               void *ud, dx_analysis_result *out, dx_errbuf *err) {
  dx_audio audio = {0};
  double t0 = dx_now();
  memset(out, 0, sizeof *out);
  dx_status st = dx_audio_load(path, a->p.max_seconds, &audio, err);
  if (st != DX_OK) return st;
  out->t_decode = dx_now() - t0;
  st = dx_analyzer_run(a, &audio, features, progress, ud, out, err);
  dx_audio_free(&audio);
  return st;
}
