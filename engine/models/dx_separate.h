/* dx_separate.h: stem separation of whole tracks with a named model, shared
 * by `demix separate` and the engine's `separate` job.
 *
 * A dx_separator is a loaded named model (dx_registry.h): a bag of Demucs
 * checkpoints with per-source weights and a bag segment, or hpss. Running it
 * converts the audio as the official code does (resample to the model's rate
 * with soxr, remix channels), applies the long-track procedure (dx_apply.h)
 * or hpss, and gives stems at the model's rate, optionally as two stems
 * (STEM and no_STEM). dx_separator_run_file does all of it from a file to
 * stem files in bounded memory (tracks of hours); dx_separator_run works on
 * a track held in memory.
 *
 * The cache keeps a few loaded separators warm, keyed by model folder, name
 * and the checkpoint files' mtimes and sizes, so a replaced file is reloaded.
 *
 * Threading: a dx_separator is read-only after loading and may run on several
 * threads at once, each with its own backends. The cache is thread-safe. */
#ifndef DX_SEPARATE_H
#define DX_SEPARATE_H

#include <stddef.h>
#include <stdint.h>

#include "dx_audio.h"
#include "dx_backend.h"
#include "dx_error.h"
#include "dx_registry.h"

#define DX_STEMS_MAX 8

typedef struct dx_separator dx_separator;

/* Load a named model from model_dir. DX_ERR_NOT_FOUND for an unknown name,
 * DX_ERR_MODEL_NOT_INSTALLED (message says how to fetch it) when files are
 * missing, the checkpoint loader's status (DX_ERR_MODEL, DX_ERR_PICKLE_GLOBAL,
 * ...) for a bad file, DX_ERR_MODEL when a bag's models disagree. */
dx_status dx_separator_load(const char *model_dir, const char *name, dx_separator **out, dx_errbuf *err);
void dx_separator_free(dx_separator *s); /* NULL is a no-op */

const dx_registry_entry *dx_separator_entry(const dx_separator *s);
int dx_separator_n_sources(const dx_separator *s);
const char *dx_separator_source(const dx_separator *s, int i);
int dx_separator_samplerate(const dx_separator *s);
int dx_separator_channels(const dx_separator *s);
/* Longest segment the user may ask for (seconds; 0 when any). */
double dx_separator_max_segment(const dx_separator *s);

/* The official save_audio's clip modes (dx_audio.h's DX_WRITER_*). */
typedef enum { DX_CLIP_RESCALE = 0, DX_CLIP_CLAMP, DX_CLIP_TANH, DX_CLIP_NONE } dx_clip_mode;

typedef struct {
  int shifts;            /* default 1 */
  double overlap;        /* default 0.25 */
  double segment;        /* seconds, 0 = the model's */
  uint64_t seed;         /* shift offsets, default 0 */
  int jobs;              /* parallel chunks; needs that many backends (default 1) */
  const char *two_stems; /* NULL: every source; else STEM and no_STEM */
  int other_add;         /* no_STEM = sum of the other sources (official --other-method add) instead of mix - STEM */
  int mp3_kbps;          /* MP3 stems' bit rate (0: DX_MP3_KBPS_DEFAULT) */
  dx_clip_mode clip;     /* how stem files avoid clipping (default rescale) */
  int (*progress)(void *user, size_t done, size_t total); /* nonzero cancels */
  void *progress_user;
} dx_separate_params;

dx_separate_params dx_separate_default_params(void);

typedef struct {
  int n;
  char names[DX_STEMS_MAX][40];
  int channels, samplerate;
  size_t frames;
  float *data; /* [n][channels][frames], malloc'd */
} dx_stems;

void dx_stems_free(dx_stems *st); /* zeroed structs are fine */

/* Convert audio in place to the model's sample rate and channel count
 * (resample first, then remix, as the official convert_audio); the old
 * buffer is released as soon as it is not needed. */
dx_status dx_separator_convert(const dx_separator *s, dx_audio *a, dx_errbuf *err);

/* Separate a (converted with dx_separator_convert when needed: other rates or
 * channel counts are converted into a temporary copy). backends[0..jobs)
 * run the forwards (unused by hpss). On success out owns the stems.
 * DX_ERR_INVALID for an unknown two_stems name or a segment too long for the
 * model, DX_ERR_CANCELLED, a backend's error. */
dx_status dx_separator_run(const dx_separator *s, dx_backend *const *backends, const dx_audio *a,
                           const dx_separate_params *p, dx_stems *out, dx_errbuf *err);

/* Write every stem to dir/<name>.<ext> (dir is created). As the official
 * save_audio's default "rescale" clip mode, a stem whose peak exceeds 1/1.01
 * is scaled (in place) by 1 / (1.01 * peak) first, whatever the encoding.
 * paths (optional) receive the file
 * paths, DX_STEMS_MAX of them, each 1024 bytes. */
dx_status dx_stems_write(dx_stems *st, const char *dir, dx_audio_encoding enc, char (*paths)[1024], dx_errbuf *err);

/* Separate the audio file in_path into dir/<stem>.<ext> (dir is created,
 * p->clip applied: rescale by default),
 * streaming: the file is read in blocks (through a float32 scratch file in
 * dir, deleted at once, when it must be resampled or cannot seek), and the
 * stems are written as they are finished, so memory stays bounded (a few
 * segments' worth) whatever the track's length; results equal
 * dx_audio_load + dx_separator_convert + dx_separator_run + dx_stems_write
 * (the rescale clip mode included: stems pass through float32 scratch files
 * until their peak is known). max_seconds > 0 refuses longer audio
 * (DX_ERR_TOO_LONG). On success info gets n, names, channels, samplerate and
 * frames (data stays NULL) and paths (optional, DX_STEMS_MAX x 1024) the
 * files. On failure (any dx_audio_load or dx_separator_run status,
 * DX_ERR_CANCELLED, DX_ERR_IO) no stem file and no scratch file is left. */
dx_status dx_separator_run_file(const dx_separator *s, dx_backend *const *backends, const char *in_path,
                                double max_seconds, const dx_separate_params *p, const char *dir,
                                dx_audio_encoding enc, dx_stems *info, char (*paths)[1024], dx_errbuf *err);

/* ---- a small shared cache of loaded separators ---- */

/* Get a loaded separator (loading it on a miss or when its files changed).
 * Release it with dx_separator_release; it stays cached for the next user.
 * The cache holds up to 2 models process-wide; a model evicted while in use
 * is freed by its last release. */
dx_status dx_separator_acquire(const char *model_dir, const char *name, dx_separator **out, dx_errbuf *err);
void dx_separator_release(dx_separator *s);
/* Drop every cached model not in use (tests, shutdown). */
void dx_separator_cache_clear(void);

#endif
