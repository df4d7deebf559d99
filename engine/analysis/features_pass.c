/* features_pass.c: the backend part of the analysis pipeline (see
 * analysis.c for the whole picture): every per-frame feature of the mono
 * signal, then the track-wide steps and reductions.
 *
 *   phase 1, per block of frames (a streamed run first reads the block's
 *   window of y back from its scratch file; on CUDA it is uploaded):
 *     y --stft_power--> power
 *     power --spectral_frames--> feat[:, centroid..contrast]
 *     power --mel_power--> mel      power --chroma_power--> chroma, key chroma (max-normalised)
 *     y --signal_frames--> feat[:, rms, zcr]
 *   (main) max of mel;  phase 2, per block of rows: mel --power_to_db--> dB mel
 *   phase 3: dB mel --gemm (DCT)--> mfcc per block of rows; dB mel --onset_flux--> env, env_low
 *   (main) contrast peak / valley --power_to_db each--> difference; moments of every column
 *
 * Threading: on the CPU backend a run's lanes (params.threads of them,
 * each with its own feature plan and spectrogram block) take the tasks of
 * a phase from a shared counter; a phase opens when the one before is
 * complete. Every task writes its own rows only and every reduction runs
 * on the calling thread over the whole array in a fixed order, so the
 * result does not depend on the number of threads or who ran what. On
 * CUDA there is one lane (the backend's stream) and tasks are whole
 * chunks of params.chunk_frames frames. The progress callback is only
 * called from the calling thread. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "analysis_priv.h"
#include "dx_util.h"

#define ROWS_PER_TASK 512 /* phase 2 and 3 rows per task on the CPU */

enum { K_FRAMES, K_MEL_DB, K_MEL_USE };

typedef struct {
  int kind, ntasks, done; /* done under mu */
  atomic_int next;
  dx_status st;           /* first failure, under mu */
  const char *what;       /* the op that failed */
} phase;

typedef struct {
  dx_an_run *run;
  int index; /* lane index (>= n_lanes: loudness only) */
  pthread_t th;
} helper;

struct dx_an_run {
  dx_analyzer *a;
  dx_an_loud_job *loud;
  int loud_async;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int opened, closing;
  atomic_int abort;
  phase ph[3];
  helper hl[DX_AN_MAX_LANES];
  int n_helpers;
  /* the features being computed */
  const float *y;
  size_t n, T;
  unsigned f;
  int rows; /* rows per phase 2 / 3 task */
  int n_dct; /* phase 3: DCT tasks, then the flux tasks */
};

#define TRY(x)                                                                                                         \
  do {                                                                                                                 \
    dx_status st_ = (x);                                                                                               \
    if (st_ != DX_OK) {                                                                                                \
      *what = #x;                                                                                                      \
      return st_;                                                                                                      \
    }                                                                                                                  \
  } while (0)

/* A streamed run's samples [lo, hi) from its scratch file into the lane's
 * window (zeros past what the resampler wrote, as on the whole-file path). */
static dx_status read_window(dx_analyzer *a, dx_an_lane *ln, size_t lo, size_t hi) {
  size_t have = a->sig_len > lo ? (a->sig_len < hi ? a->sig_len : hi) - lo : 0;
  if (have && dx_pread_all(a->sig_fd, ln->win_host, have * sizeof(float), (long long)(lo * sizeof(float))))
    return DX_ERR_IO;
  memset(ln->win_host + have, 0, (hi - lo - have) * sizeof(float));
  return ln->win == ln->win_host ? DX_OK : a->be->upload(a->be, ln->win, ln->win_host, (hi - lo) * sizeof(float));
}

/* Frames [f0, f0 + nf): everything computed per frame. */
static dx_status frames_task(dx_an_run *c, dx_an_lane *ln, size_t f0, int nf, const char **what) {
  dx_analyzer *a = c->a;
  dx_backend *be = a->be;
  const dx_feature_ops *op = be->feat;
  const dx_feat_params *fp = &a->p.feat;
  dx_feat_plan *pl = ln->plan;
  int nb = pl->n_bins, nc = fp->n_chroma;
  unsigned f = c->f;
  int need_mel = (f & (DX_AF_TEMPO | DX_AF_MFCC)) != 0;
  int need_chroma = (f & (DX_AF_KEY | DX_AF_CHROMA)) != 0;
  int need_spec = (f & DX_AF_SPECTRAL) != 0;
  int need_sig = (f & (DX_AF_ENERGY | DX_AF_SPECTRAL)) != 0;
  const float *y = a->y; /* holds samples from y0 on */
  size_t y0 = 0;
  if (a->sig_fd >= 0) {
    size_t lo, hi;
    dx_feat_frames_span(c->n, fp->n_fft, fp->hop, f0, nf, &lo, &hi);
    dx_status st = read_window(a, ln, lo, hi);
    if (st != DX_OK) {
      *what = st == DX_ERR_IO ? "reading the analysis signal back from its scratch file" : "uploading the signal window";
      return st;
    }
    y = ln->win;
    y0 = lo;
  }
  if (need_mel || need_chroma || need_spec) {
    TRY(op->stft_power(pl, y, y0, c->n, f0, nf, ln->power, nb));
    if (need_spec) TRY(op->spectral_frames(pl, ln->power, nb, nf, a->feat + f0 * DX_FCOL_COUNT, DX_FCOL_COUNT));
    /* melspectrogram: mel_fb @ |X|^2 (power 2) */
    if (need_mel) TRY(op->mel_power(pl, ln->power, nb, nf, a->mel + f0 * fp->n_mels, fp->n_mels));
    /* chroma_stft: chroma_fb @ |X|^2, then each frame scaled by its max;
     * the key's chroma: the same without the bins below key_min_hz */
    if (need_chroma) {
      float *ch = a->chroma + f0 * nc, *kc = (f & DX_AF_KEY) ? a->kchroma + f0 * nc : NULL;
      if (op->chroma_power) {
        TRY(op->chroma_power(pl, ln->power, nb, nf, a->key_bin0, ch, kc, nc));
      } else {
        TRY(op->gemm_nt(be, nf, nc, nb, ln->power, nb, pl->chroma_fb, nb, ch, nc));
        if (kc) TRY(op->gemm_nt(be, nf, nc, nb, ln->power, nb, a->key_fb, nb, kc, nc));
      }
      TRY(op->rows_normalize_max(be, ch, nf, nc, nc));
      if (kc) TRY(op->rows_normalize_max(be, kc, nf, nc, nc));
    }
  }
  if (need_sig) TRY(op->signal_frames(pl, y, y0, c->n, f0, nf, a->feat + f0 * DX_FCOL_COUNT, DX_FCOL_COUNT));
  return DX_OK;
}

static dx_status run_task(dx_an_run *c, int k, dx_an_lane *ln, int i, const char **what) {
  dx_analyzer *a = c->a;
  dx_backend *be = a->be;
  const dx_feature_ops *op = be->feat;
  const dx_feat_params *fp = &a->p.feat;
  switch (c->ph[k].kind) {
  case K_FRAMES: {
    size_t f0 = (size_t)i * a->block;
    int nf = (int)(c->T - f0 < (size_t)a->block ? c->T - f0 : (size_t)a->block);
    return frames_task(c, ln, f0, nf, what);
  }
  case K_MEL_DB: {
    /* power_to_db(mel, ref=1, amin=1e-10, top_db=80) with the track's max */
    size_t r0 = (size_t)i * c->rows;
    int nr = (int)(c->T - r0 < (size_t)c->rows ? c->T - r0 : (size_t)c->rows);
    TRY(op->power_to_db(be, a->mel + r0 * fp->n_mels, nr, fp->n_mels, 0, fp->n_mels, 1e-10f, fp->top_db,
                        a->mel_max));
    return DX_OK;
  }
  case K_MEL_USE:
    if (i < c->n_dct) {
      /* mfcc = dct(S_db, type=2, norm='ortho')[:n_mfcc] */
      size_t r0 = (size_t)i * c->rows;
      int nr = (int)(c->T - r0 < (size_t)c->rows ? c->T - r0 : (size_t)c->rows);
      TRY(op->gemm_nt(be, nr, fp->n_mfcc, fp->n_mels, a->mel + r0 * fp->n_mels, fp->n_mels, ln->plan->dct,
                      fp->n_mels, a->mfcc + r0 * fp->n_mfcc, fp->n_mfcc));
    } else if (i == c->n_dct) {
      TRY(op->onset_flux(ln->plan, a->mel, (int)c->T, fp->n_mels, fp->n_mels, a->env));
    } else {
      /* the same flux over the low bands only (kick, bass, snare body) */
      TRY(op->onset_flux(ln->plan, a->mel, (int)c->T, fp->n_mels, a->n_low, a->env_low));
    }
    return DX_OK;
  }
  return DX_ERR_INTERNAL;
}

/* Take tasks of phase k until none is left. The calling thread (main)
 * reports progress through the frames phase. */
static void work(dx_an_run *c, int k, dx_an_lane *ln, int main_thread, dx_analysis_progress_fn progress, void *ud,
                 size_t *reported) {
  phase *ph = &c->ph[k];
  for (;;) {
    int i = atomic_fetch_add(&ph->next, 1);
    if (i >= ph->ntasks) break;
    const char *what = NULL;
    dx_status st = atomic_load(&c->abort) ? DX_OK : run_task(c, k, ln, i, &what);
    pthread_mutex_lock(&c->mu);
    if (st != DX_OK && ph->st == DX_OK) ph->st = st, ph->what = what;
    int done = ++ph->done;
    if (done == ph->ntasks) pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    if (st != DX_OK) atomic_store(&c->abort, 1);
    if (main_thread && progress && ph->kind == K_FRAMES && !atomic_load(&c->abort)) {
      /* about once per chunk_frames frames, as the callback may write to a database */
      size_t frames = (size_t)done * c->a->block;
      if (frames > c->T) frames = c->T;
      if (frames - *reported >= (size_t)c->a->p.chunk_frames || frames == c->T) {
        *reported = frames;
        dx_status pst = progress(ud, 20 + (int)(60 * frames / c->T));
        if (pst != DX_OK) {
          pthread_mutex_lock(&c->mu);
          if (ph->st == DX_OK) ph->st = pst, ph->what = NULL;
          pthread_mutex_unlock(&c->mu);
          atomic_store(&c->abort, 1);
        }
      }
    }
  }
}

static void *helper_main(void *arg) {
  helper *h = arg;
  dx_an_run *c = h->run;
  if (h->index == 1 && c->loud_async) dx_an_loud_run(c->loud);
  if (h->index >= c->a->n_lanes) return NULL;
  dx_an_lane *ln = &c->a->lanes[h->index];
  for (int k = 0; k < 3; k++) {
    pthread_mutex_lock(&c->mu);
    while (c->opened <= k && !c->closing) pthread_cond_wait(&c->cv, &c->mu);
    int open = c->opened > k;
    pthread_mutex_unlock(&c->mu);
    if (!open) break;
    work(c, k, ln, 0, NULL, NULL, NULL);
  }
  return NULL;
}

dx_status dx_an_run_begin(dx_analyzer *a, dx_an_loud_job *loud, dx_an_run **out) {
  dx_an_run *c = calloc(1, sizeof *c);
  *out = c;
  if (!c) return DX_ERR_NOMEM;
  c->a = a;
  c->loud = loud;
  pthread_mutex_init(&c->mu, NULL);
  pthread_cond_init(&c->cv, NULL);
  int want = a->n_lanes - 1;
  if (loud && want < 1) want = 1;
  for (int h = 1; h <= want; h++) {
    helper *hp = &c->hl[c->n_helpers];
    hp->run = c;
    hp->index = h;
    if (h == 1 && loud) c->loud_async = 1;
    if (pthread_create(&hp->th, NULL, helper_main, hp) != 0) {
      if (h == 1) c->loud_async = 0;
      break;
    }
    c->n_helpers++;
  }
  return DX_OK;
}

int dx_an_run_loud_async(const dx_an_run *run) { return run && run->loud_async; }

void dx_an_run_end(dx_an_run *c) {
  if (!c) return;
  pthread_mutex_lock(&c->mu);
  c->closing = 1;
  pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->mu);
  for (int h = 0; h < c->n_helpers; h++) pthread_join(c->hl[h].th, NULL);
  pthread_mutex_destroy(&c->mu);
  pthread_cond_destroy(&c->cv);
  free(c);
}

/* Open phase k with ntasks tasks, work on it, wait until it is complete. */
static dx_status run_phase(dx_an_run *c, int k, int kind, int ntasks, dx_analysis_progress_fn progress, void *ud,
                           dx_errbuf *err) {
  phase *ph = &c->ph[k];
  pthread_mutex_lock(&c->mu);
  ph->kind = kind;
  ph->ntasks = ntasks;
  ph->done = 0;
  ph->st = DX_OK;
  atomic_store(&ph->next, 0);
  c->opened = k + 1;
  pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->mu);
  size_t reported = 0;
  work(c, k, &c->a->lanes[0], 1, progress, ud, &reported);
  pthread_mutex_lock(&c->mu);
  while (ph->done < ph->ntasks) pthread_cond_wait(&c->cv, &c->mu);
  dx_status st = ph->st;
  const char *what = ph->what;
  pthread_mutex_unlock(&c->mu);
  if (st != DX_OK && what) return dx_fail(err, st, "analysis step failed: %s", what);
  return st;
}

#define STEP(x)                                                                                                        \
  do {                                                                                                                 \
    if ((st = (x)) != DX_OK) return dx_fail(err, st, "analysis step failed: %s", #x);                                  \
  } while (0)

dx_status dx_an_features(dx_analyzer *a, dx_an_run *c, const float *y_host, size_t n, unsigned f,
                         dx_analysis_progress_fn progress, void *ud, dx_analysis_result *r, dx_errbuf *err) {
  dx_backend *be = a->be;
  const dx_feature_ops *op = be->feat;
  const dx_feat_params *fp = &a->p.feat;
  dx_status st;
  size_t T = dx_feat_frame_count(n, fp->hop);
  if (T > (size_t)1 << 30) return dx_fail(err, DX_ERR_TOO_LONG, "track too long to analyse");
  int Ti = (int)T;
  r->frames = T;
  if ((a->sig_fd < 0 && n > a->cap_samples) || T > a->cap_frames)
    return dx_fail(err, DX_ERR_INTERNAL, "analysis buffers not reserved");

  double t0 = dx_now();
  if (y_host && y_host != a->y) {
    STEP(be->upload(be, a->y, y_host, n * sizeof(float)));
    STEP(be->sync(be));
  }
  r->t_transfer += dx_now() - t0;
  t0 = dx_now();

  c->y = a->y;
  c->n = n;
  c->T = T;
  c->f = f;
  c->rows = a->n_lanes > 1 ? ROWS_PER_TASK : Ti;
  int need_mel = (f & (DX_AF_TEMPO | DX_AF_MFCC)) != 0;
  int need_chroma = (f & (DX_AF_KEY | DX_AF_CHROMA)) != 0;
  int need_spec = (f & DX_AF_SPECTRAL) != 0;
  int need_sig = (f & (DX_AF_ENERGY | DX_AF_SPECTRAL)) != 0;
  int nbands = fp->contrast_bands + 1;

  if (need_mel || need_chroma || need_spec || need_sig)
    if ((st = run_phase(c, 0, K_FRAMES, (int)((T + a->block - 1) / a->block), progress, ud, err)) != DX_OK) return st;

  if (need_mel) {
    STEP(op->col_max(be, a->mel, Ti, fp->n_mels, 0, fp->n_mels, &a->mel_max));
    int nrt = (int)((T + c->rows - 1) / c->rows);
    if ((st = run_phase(c, 1, K_MEL_DB, nrt, NULL, NULL, err)) != DX_OK) return st;
    c->n_dct = (f & DX_AF_MFCC) ? nrt : 0;
    if ((st = run_phase(c, 2, K_MEL_USE, c->n_dct + ((f & DX_AF_TEMPO) ? 2 : 0), NULL, NULL, err)) != DX_OK)
      return st;
    if (f & DX_AF_MFCC) {
      double mean[DX_MAX_MFCC], sd[DX_MAX_MFCC];
      STEP(op->moments(be, a->mfcc, Ti, fp->n_mfcc, 0, fp->n_mfcc, mean, sd));
      r->n_mfcc = fp->n_mfcc;
      for (int i = 0; i < fp->n_mfcc; i++) r->mfcc[i] = (dx_stat){mean[i], sd[i]};
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
