/* dx_analysis.h: the audio analysis pipeline: tempo and beats, key, energy,
 * loudness, spectral shape, MFCC and chroma of one track, on a compute
 * backend (dx_backend.h, ops in dx_feature_ops.h).
 *
 * Audio: features are computed on a mono downmix resampled to
 * params.feat.sample_rate (22,050 Hz, as librosa.load does by default:
 * downmix first, then soxr HQ); loudness (loudness.c, BS.1770-4) on the
 * original channels at the original rate.
 *
 * A dx_analyzer is one worker's: it owns the backend's feature plans (FFT
 * plans, filterbanks; one per thread on the CPU), the backend buffers and
 * host buffers for the decoded file, the downmixed and the resampled
 * signal, made once and grown only when a longer track arrives (files
 * past params.stream_min_seconds are streamed and never held decoded). It is not thread-safe; open one per worker thread with
 * that worker's backend, or keep it in the backend (dx_analyzer_cached).
 * Results are plain host data. */
#ifndef DX_ANALYSIS_H
#define DX_ANALYSIS_H

#include <json-c/json.h>

#include "dx_audio.h"
#include "dx_backend.h"
#include "dx_feature_ops.h"

/* Feature groups a request picks ("features": [...]). */
enum {
  DX_AF_TEMPO = 1 << 0,    /* tempo, confidence, beats, onset rate, danceability */
  DX_AF_KEY = 1 << 1,      /* key, confidence, camelot */
  DX_AF_ENERGY = 1 << 2,   /* energy 0..1, RMS */
  DX_AF_SPECTRAL = 1 << 3, /* centroid, bandwidth, rolloff, flatness, contrast, zero-crossing rate */
  DX_AF_MFCC = 1 << 4,     /* 20 MFCC means and deviations */
  DX_AF_CHROMA = 1 << 5,   /* 12 chroma means */
  DX_AF_LOUDNESS = 1 << 6, /* integrated LUFS, loudness range, true peak */
  DX_AF_ALL = (1 << 7) - 1
};

/* Name of one group bit ("tempo", ...), NULL for anything else. */
const char *dx_analysis_feature_name(unsigned bit);
/* Parse one name ("tempo", ..., "all") into *mask (OR-ed in). DX_ERR_INVALID
 * for an unknown name, with the valid names in err. */
dx_status dx_analysis_feature_add(const char *name, unsigned *mask, dx_errbuf *err);
/* Parse a comma-separated list ("tempo,key") into *mask (replaced). */
dx_status dx_analysis_features_parse(const char *list, unsigned *mask, dx_errbuf *err);

typedef struct {
  dx_feat_params feat;      /* STFT / filterbank parameters (librosa defaults) */
  double max_seconds;       /* longest accepted track; <= 0: no limit */
  int chunk_frames;         /* frames per STFT batch (bounds the spectrogram scratch) */
  double tempo_min_bpm;     /* 60: tempo search range */
  double tempo_max_bpm;     /* 200 */
  double low_hz;            /* 300: top of the low band whose onsets mark the beat */
  double key_min_hz;        /* 180: the key's chroma leaves out the bins below */
  int threads;              /* 1; >= 2 (at most 8): threads of one run: loudness on a helper beside the
                               resampling, and on the CPU backend the per-frame feature work split among
                               all of them (results do not depend on the count) */
  double stream_min_seconds; /* 1200: dx_analyzer_run_file decodes a longer file block by block (loudness,
                               downmix and resampling as each block arrives; the decoded channels are never
                               held, the analysis signal goes to a scratch file and is read back a window
                               at a time) instead of into the analyzer's buffers; same results either way.
                               0: every file; < 0: none */
  char scratch_dir[1024];    /* where streamed runs put that scratch file (unlinked at once, 88 KB per
                               second of track at 22,050 Hz); "": $TMPDIR, else /tmp */
} dx_analysis_params;

void dx_analysis_default_params(dx_analysis_params *p);

typedef struct {
  double mean, std;
} dx_stat;

#define DX_MAX_MFCC 40
#define DX_CONTRAST_N 7

typedef struct {
  unsigned features;          /* groups computed */
  double duration;            /* seconds */
  int sample_rate, channels;  /* of the file */
  int analysis_rate;          /* features' rate */
  size_t frames;              /* STFT frames */

  double tempo, tempo_confidence, onset_rate;
  double danceability;        /* DFA, Essentia's scale: ~2 for noise, 0..3 for most music (danceability.c) */
  double *beats;              /* seconds, malloc'd */
  size_t n_beats;

  int key_index;              /* 0..11 major C..B, 12..23 minor C..B; -1 none */
  char key[16];               /* "A minor" */
  char camelot[4];            /* "8A" */
  double key_confidence;

  double energy;              /* 0..1 */
  dx_stat rms;

  double lufs, lra, true_peak_db; /* integrated, range (LU), dBTP; -inf when silent */

  dx_stat centroid, bandwidth, rolloff, flatness, zcr;
  dx_stat contrast[DX_CONTRAST_N];
  int n_mfcc;
  dx_stat mfcc[DX_MAX_MFCC];
  double chroma[12];

  /* Where the time went (seconds). */
  double t_decode, t_resample, t_transfer, t_compute, t_loudness;
} dx_analysis_result;

void dx_analysis_result_free(dx_analysis_result *r); /* frees beats; NULL is fine */

typedef struct dx_analyzer dx_analyzer;

/* Open an analyzer on be (borrowed; must outlive it). Makes the feature plan.
 * DX_ERR_INVALID for bad params, backend errors otherwise. */
dx_status dx_analyzer_open(dx_backend *be, const dx_analysis_params *p, dx_analyzer **out, dx_errbuf *err);
void dx_analyzer_close(dx_analyzer *a); /* NULL is a no-op */
/* The analyzer kept in be's cache slot (be->feat_state, see dx_backend.h),
 * made on first use and remade when p differs from the one it was made
 * with. The backend owns it (freed by dx_backend_close, so a reopened
 * backend gets a fresh one); the caller borrows it for as long as it holds
 * be and must not close it. Same threading as be. Errors as
 * dx_analyzer_open. */
dx_status dx_analyzer_cached(dx_backend *be, const dx_analysis_params *p, dx_analyzer **out, dx_errbuf *err);
/* Give back what grows with the tracks an analyzer has seen (the decoded
 * file, the signal, the per-frame buffers: hundreds of MB after a long
 * track) and keep what does not (plans, filterbanks, windows, the
 * resampler); the next run allocates again. For a worker going idle.
 * _cached_trim does it to be's cached analyzer, if it has one. */
void dx_analyzer_trim(dx_analyzer *a); /* NULL is a no-op */
void dx_analyzer_cached_trim(dx_backend *be);

/* Called between steps with a percentage (0-100); a non-OK return (e.g.
 * DX_ERR_CANCELLED) stops the analysis with that status. May be NULL. */
typedef dx_status (*dx_analysis_progress_fn)(void *ud, int pct);

/* Analyse decoded audio for the groups in features. out is filled (free
 * with dx_analysis_result_free, also after a failure). DX_ERR_EMPTY for no
 * samples, DX_ERR_SILENT for digital silence, DX_ERR_TOO_LONG beyond
 * max_seconds; backend errors pass through. */
dx_status dx_analyzer_run(dx_analyzer *a, const dx_audio *audio, unsigned features, dx_analysis_progress_fn progress,
                          void *ud, dx_analysis_result *out, dx_errbuf *err);

/* Decode path (dx_audio_load, limited to max_seconds) and analyse it.
 * A file longer than params.stream_min_seconds is streamed: memory then
 * grows only with the per-frame features (about 34 KB per second of track
 * with the defaults), not with the file's channels and rate nor with the
 * analysis signal, which waits in a scratch file (DX_ERR_IO when it cannot
 * be written or read); progress is reported while it decodes (0..20, or
 * 0..100 for loudness alone). Decoder statuses (DX_ERR_UNSUPPORTED,
 * DX_ERR_CORRUPT, ...) pass through. */
dx_status dx_analyzer_run_file(dx_analyzer *a, const char *path, unsigned features, dx_analysis_progress_fn progress,
                               void *ud, dx_analysis_result *out, dx_errbuf *err);

/* The result as a JSON object (caller owns it): seed-002 fields (tempo,
 * key, energy, spectral_centroid, spectral_rolloff, zero_crossing_rate,
 * features.mfcc, features.chroma) plus the rest; see result_json.c. */
json_object *dx_analysis_result_json(const dx_analysis_result *r);

/* ---- building blocks (host code, used by the pipeline and tests) ---- */

/* Tempo and beats from onset envelopes of n frames (frame rate fps): env
 * over all mel bands, env_low over the bands up to low_hz (may be NULL).
 * Fills tempo, tempo_confidence, beats (seconds), onset_rate. */
dx_status dx_tempo_analyze(const float *env, const float *env_low, size_t n, double fps, double duration,
                           const dx_analysis_params *p, dx_analysis_result *r);
/* Danceability (see danceability.c) from the standard deviations of a
 * signal's 10 ms frames: s[0 .. n). *out = 0 when it is undefined (under
 * two time scales, or an even signal). DX_ERR_NOMEM. */
dx_status dx_danceability(const double *s, size_t n, double *out);
/* Those deviations gathered from a signal fed in pieces of any length. */
typedef struct {
  int frame, fill; /* samples per frame (int(0.01 x rate)); of the current one, waiting in part */
  float *part;
  double *s;       /* deviations of the complete frames */
  size_t n, cap;
} dx_dance;
void dx_dance_begin(dx_dance *d, int sample_rate); /* keeps the buffer; d zeroed before the first use */
dx_status dx_dance_feed(dx_dance *d, const float *y, size_t n); /* DX_ERR_NOMEM */
void dx_dance_free(dx_dance *d);
/* Key from 12 chroma means (C first). Fills key_index, key, camelot,
 * key_confidence. */
void dx_key_detect(const double chroma[12], dx_analysis_result *r);
/* Key name and Camelot code of a key index (0..23). */
const char *dx_key_name(int key_index, char buf[16]);
const char *dx_key_camelot(int key_index, char buf[4]);
/* Integrated loudness (BS.1770-4, LUFS; -inf when every block is gated
 * out), loudness range (EBU Tech 3342, LU; 0 under 3 s) and true peak
 * (dBTP, -inf for digital silence) of planar audio, in one pass with its
 * own K-weighting (see loudness.c); all three -inf for rates below 8 kHz.
 * DX_ERR_INVALID / DX_ERR_EMPTY for no audio, DX_ERR_NOMEM. */
dx_status dx_loudness_measure(const dx_audio *audio, double *lufs, double *lra, double *true_peak_db, dx_errbuf *err);
/* Linear true peak of n samples (4x oversampled, BS.1770-4 Annex 2), at
 * least floor_peak. exhaustive = 0 interpolates only where the result can
 * change (same value as exhaustive = 1, which interpolates everything). */
float dx_true_peak(const float *x, size_t n, float floor_peak, int exhaustive);

/* The same three values over a track that arrives in blocks (a file
 * being decoded), in memory that does not grow with its length (the 100 ms
 * sub-block sums excepted: 80 bytes a second). begin: channels (1..64) and
 * rate of the track; DX_ERR_INVALID for bad ones, DX_ERR_NOMEM; *out is
 * the caller's until _end or _free. add: the next frames of the track,
 * interleaved (block[i * channels + c]), any count per call; DX_ERR_NOMEM
 * (then _end returns it too). end: the results, as dx_loudness_measure
 * gives for the whole track (integrated and range within rounding of the
 * sums, true peak identical); DX_ERR_EMPTY when no frame was added; frees
 * s whatever it returns. One thread at a time per stream. */
typedef struct dx_loudness_stream dx_loudness_stream;
dx_status dx_loudness_stream_begin(int channels, int samplerate, dx_loudness_stream **out, dx_errbuf *err);
dx_status dx_loudness_stream_add(dx_loudness_stream *s, const float *block, size_t frames, dx_errbuf *err);
dx_status dx_loudness_stream_end(dx_loudness_stream *s, double *lufs, double *lra, double *true_peak_db,
                                 dx_errbuf *err);
void dx_loudness_stream_free(dx_loudness_stream *s); /* drop a measurement without results; NULL is a no-op */

/* Largest |x[i]| over x[0..n) (0 when n is 0; vectorised). */
float dx_sample_peak(const float *x, size_t n);

#endif
