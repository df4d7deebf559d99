/* analysis_priv.h: the analyzer's state, shared by analysis.c (lifetime,
 * decoding, downmix, resampling, loudness, tempo and key) and
 * features_pass.c (the feature ops over the whole track, split over
 * threads on the CPU backend). Private to engine/analysis. */
#ifndef DX_ANALYSIS_PRIV_H
#define DX_ANALYSIS_PRIV_H

#include <soxr.h>

#include "dx_analysis.h"

#define DX_AN_MAX_LANES 8 /* threads one run may use */
#define DX_AN_CPU_BLOCK 32 /* STFT frames per task on the CPU: the block's spectrogram (128 KiB) stays in L2 */

/* What one thread of a run computes with: its own feature plan (FFT
 * buffers and scratch are per plan) and spectrogram block. */
typedef struct {
  dx_feat_plan *plan;
  float *power; /* block x n_bins, backend memory */
} dx_an_lane;

struct dx_analyzer {
  dx_backend *be;
  dx_analysis_params p;
  dx_feat_plan *plan; /* lanes[0].plan */
  int n_lanes;        /* 1 on CUDA (one stream); params.threads (at most DX_AN_MAX_LANES) on the CPU */
  int block;          /* frames per stft_power call: chunk_frames on CUDA, DX_AN_CPU_BLOCK on the CPU */
  dx_an_lane lanes[DX_AN_MAX_LANES];
  /* backend buffers, grown on demand */
  float *y, *feat, *mel, *chroma, *kchroma, *mfcc, *env, *env_low;
  float *key_fb; /* chroma filterbank without the bins below key_bin0 (only without be->feat->chroma_power) */
  size_t cap_samples, cap_frames;
  float *env_host, *env_low_host;
  float *mono, *rs; /* host: downmix and resampled signal (rs unused on CPU: a->y is host memory) */
  size_t cap_mono, cap_rs;
  int n_low;    /* mel bands whose centre is at most low_hz */
  int key_bin0; /* first FFT bin the key's chroma uses (key_min_hz) */
  double key_chroma[12];
  float mel_max; /* the run's largest mel power (power_to_db's reference for top_db) */
  soxr_t sx;    /* resampler from sx_rate to the analysis rate, kept between tracks (NULL: none yet) */
  int sx_rate;
  dx_audio dec; /* decoded file, kept between files (dx_analyzer_run_file) */
  size_t dec_cap;
};

/* Loudness measured beside the features (analysis.c). */
typedef struct {
  const dx_audio *audio;
  double lufs, lra, tp, secs;
  dx_status st;
  dx_errbuf err;
} dx_an_loud_job;

void dx_an_loud_run(dx_an_loud_job *j);

/* One run's threads (features_pass.c). dx_an_run_begin starts the helper
 * threads: with loud (may be NULL), helper 1 measures the loudness first
 * (a helper is started for it even when the features use one lane); the
 * others wait for feature work. The caller then runs dx_an_features and
 * finally dx_an_run_end, which joins every helper (also after a failure).
 * DX_ERR_NOMEM when the run state cannot be made; a helper that cannot be
 * started leaves its work to the others (loudness: to the caller). */
typedef struct dx_an_run dx_an_run;
dx_status dx_an_run_begin(dx_analyzer *a, dx_an_loud_job *loud, dx_an_run **out);
/* 1 if the loudness job was handed to a helper thread. */
int dx_an_run_loud_async(const dx_an_run *run);
void dx_an_run_end(dx_an_run *run); /* NULL is a no-op */

/* Every per-frame feature of mono y (n samples; backend memory when y is
 * a->y, else host memory) for feature groups f, reductions into r, the
 * onset envelopes into a->env_host / env_low_host and the key chroma means
 * into a->key_chroma. Progress 20..80. Errors: backend statuses, the
 * progress callback's, DX_ERR_NOMEM. */
dx_status dx_an_features(dx_analyzer *a, dx_an_run *run, const float *y, size_t n, unsigned f,
                         dx_analysis_progress_fn progress, void *ud, dx_analysis_result *r, dx_errbuf *err);

#endif
