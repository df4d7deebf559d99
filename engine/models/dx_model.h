/* dx_model.h: a loaded Demucs model (one checkpoint) and its forward pass.
 *
 * dx_model_load reads an official Demucs `.th` file (engine/models/checkpoint*)
 * and builds the graph its class names: HTDemucs (v4), HDemucs (v3 hybrid) or
 * Demucs (v3 time-only), shapes from the checkpoint's kwargs. Weights are
 * uploaded to the backend once (dx_model_bind) and kept there while the model
 * is loaded.
 *
 * Threading: a dx_model is read-only after loading and binding and may be
 * shared by every worker of one backend device; dx_model_forward takes the
 * calling worker's backend (its stream and scratch). */
#ifndef DX_MODEL_H
#define DX_MODEL_H

#include <stddef.h>
#include <stdio.h>

#include "dx_backend.h"
#include "dx_error.h"

#define DX_MODEL_MAX_SOURCES 8

typedef enum { DX_MODEL_HTDEMUCS = 1, DX_MODEL_HDEMUCS = 2, DX_MODEL_DEMUCS = 3 } dx_model_class;

typedef struct dx_model dx_model;

typedef struct {
  dx_model_class klass;
  int n_sources;
  char sources[DX_MODEL_MAX_SOURCES][32]; /* e.g. drums, bass, other, vocals */
  int audio_channels;                     /* 2 for the released models */
  int samplerate;                         /* 44100 */
  double segment;                         /* seconds, from kwargs (Fraction or int) */
  size_t params;                          /* parameter count */
} dx_model_info;

/* Load a checkpoint. Refuses non-model pickles with DX_ERR_PICKLE_GLOBAL and
 * damaged files with DX_ERR_MODEL, with details in err. Caller frees with
 * dx_model_free. */
dx_status dx_model_load(const char *path, dx_model **out, dx_errbuf *err);
void dx_model_free(dx_model *m); /* NULL is a no-op; releases device weights too */
const dx_model_info *dx_model_get_info(const dx_model *m);

/* The length the model must be run at for a chunk of `length` samples
 * (343980 for HTDemucs at 7.8 s; the chunk's own length for HDemucs/Demucs
 * as the official code does). 0 when the model cannot take a chunk that
 * long (HTDemucs beyond its training length). */
size_t dx_model_valid_length(const dx_model *m, size_t length);

/* One call of the model on one batch item, no outer normalisation:
 * in [audio_channels][length] (host memory, planar) ->
 * out [n_sources][audio_channels][length] (host memory, caller-allocated).
 * HTDemucs zero-pads a shorter chunk to its training length and crops the
 * output back; a longer one is DX_ERR_INVALID. Runs on backend be: the
 * weights are uploaded on first use per device kind through that backend
 * and freed through it with the model (a CUDA backend closed first, as a
 * worker's is when reopened after a device error, keeps its allocator
 * until the last of them is freed);
 * activations come from one allocation per call, sized once per length.
 * Errors: DX_ERR_INVALID (arguments), DX_ERR_UNSUPPORTED (the backend lacks
 * an op), the backend's allocation/device errors; err has details. */
dx_status dx_model_forward(dx_model *m, dx_backend *be, const float *in, size_t length, float *out, dx_errbuf *err);

/* Optional per-layer observer for tests: called with each submodule's output
 * (name as in the reference kit's act/ entries, e.g. "encoder.0",
 * "decoder.1.1") in host memory. NULL to disable. */
typedef void (*dx_model_observer)(void *user, const char *name, const float *data, size_t n, const size_t *shape,
                                  int ndim);
void dx_model_set_observer(dx_model *m, dx_model_observer fn, void *user);

/* Op-level profile of model forwards, for finding where separation time
 * goes on a backend: with DEMIX_PROFILE=1 in the environment every backend
 * op a forward calls is timed (the backend is synchronised around each op,
 * so the ops' sum is slower than an unprofiled run, but each op's share is
 * its own), with the upload, download and whole forward beside them; the
 * figures add up over the process's forwards (all threads).
 * dx_model_profile_enabled: whether DEMIX_PROFILE is set (read once);
 * dx_model_profile_set: turn it on or off for later forwards (tests);
 * dx_model_profile_report: a table, ops by total time, to f (nothing when
 * no forward was profiled); dx_model_profile_reset: clears the figures. */
int dx_model_profile_enabled(void);
void dx_model_profile_set(int on);
void dx_model_profile_report(FILE *f);
void dx_model_profile_reset(void);

#endif
