/* analysis_priv.h: the analyzer's state, shared by analysis.c (lifetime,
 * decoding, downmix, resampling, loudness, tempo and key),
 * analysis_stream.c (the same for long files, block by block as they are
 * decoded) and features_pass.c (the feature ops over the whole track,
 * split over threads on the CPU backend). Private to engine/analysis. */
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
  /* streamed runs: the samples of the lane's frames, read back from the
   * scratch file into win_host, then (CUDA) uploaded to win */
  float *win, *win_host;
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
  int sig_fd;   /* >= 0 in a streamed run: its analysis signal, sig_len samples in a scratch file */
  size_t sig_len;
  dx_dance dance; /* the analysis signal's 10 ms deviations, for danceability (tempo group) */
};

/* Samples of a lane's window: what a->block frames read. */
size_t dx_an_window_len(const dx_analyzer *a);

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

/* ---- analysis.c's steps, shared with the streaming path (analysis_stream.c) ---- */

#define DX_AN_RESAMPLE_CHUNK 65536 /* input samples per soxr_process call */

/* Checks the request and fills the fields of r every run has (from the
 * header alone with header_only: audio->data may be NULL). DX_ERR_INVALID,
 * DX_ERR_EMPTY, DX_ERR_TOO_LONG. */
dx_status dx_an_run_start(dx_analyzer *a, const dx_audio *audio, int header_only, unsigned *features,
                          dx_analysis_result *r, dx_errbuf *err);
/* Reserves the buffers for n frames at rate sr: *olen samples of analysis
 * signal at *y (host memory: a->y on the CPU backend, a->rs otherwise) and,
 * when mono is not NULL, the downmix buffer (*y itself at the analysis
 * rate). With y NULL (a streamed run) only the per-frame buffers and the
 * lanes' windows. DX_ERR_EMPTY, DX_ERR_NOMEM, backend errors. */
dx_status dx_an_prepare(dx_analyzer *a, int sr, size_t n, size_t *olen, float **mono, float **y, dx_errbuf *err);
/* Mean of the channels of n interleaved frames (ch channels) into m, in
 * the float operations of the planar downmix (channel 0, plus each
 * further one, times 1 / ch). */
void dx_an_downmix(const float *b, int ch, size_t n, float *m);

/* Resampling of one track's downmix (n samples at rate sr) into olen
 * samples with the analyzer's soxr: begin readies it (DX_ERR_INTERNAL);
 * feed is given samples [base, avail) of the downmix at mono[0 ..] and
 * makes every soxr call those allow (rs starts zeroed: read position,
 * output position, done), writing output samples [y_base, y_base + y_cap)
 * to y[0 ..]; once avail reaches n it flushes, zeroes what soxr leaves of
 * y and sets rs->done. It returns early when y is full (rs->opos ==
 * y_base + y_cap < olen): the caller empties it and calls again. Samples
 * before rs->pos are not read again. The calls do not depend on how the
 * downmix arrives, nor, while y has room for what one call can give, on
 * y_cap, so neither does the signal. */
typedef struct {
  size_t pos, opos;
  int done;
} dx_an_rs;
dx_status dx_an_resample_begin(dx_analyzer *a, int sr, dx_errbuf *err);
dx_status dx_an_resample_feed(dx_analyzer *a, const float *mono, size_t base, size_t avail, size_t n, float *y,
                              size_t y_base, size_t y_cap, size_t olen, dx_an_rs *rs, dx_errbuf *err);

/* From the analysis signal on: progress 20, the features (dx_an_features),
 * dx_an_run_end(run) whatever happens, then tempo and key into r. */
dx_status dx_an_run_features(dx_analyzer *a, dx_an_run *run, const float *y, size_t n, unsigned features,
                             dx_analysis_progress_fn progress, void *ud, dx_analysis_result *r, dx_errbuf *err);

/* dx_analyzer_run_file for a file past params.stream_min_seconds: decodes
 * the open file f (info: its header) block by block (analysis_stream.c).
 * Statuses as dx_analyzer_run_file. */
dx_status dx_an_run_stream(dx_analyzer *a, dx_audio_file *f, const dx_audio_info *info, unsigned features,
                           dx_analysis_progress_fn progress, void *ud, dx_analysis_result *r, dx_errbuf *err);

/* Every per-frame feature of mono y (n samples; backend memory when y is
 * a->y, else host memory; NULL when a->sig_fd holds it) for feature groups
 * f, reductions into r, the
 * onset envelopes into a->env_host / env_low_host and the key chroma means
 * into a->key_chroma. Progress 20..80. Errors: backend statuses, the
 * progress callback's, DX_ERR_NOMEM. */
dx_status dx_an_features(dx_analyzer *a, dx_an_run *run, const float *y, size_t n, unsigned f,
                         dx_analysis_progress_fn progress, void *ud, dx_analysis_result *r, dx_errbuf *err);

#endif
