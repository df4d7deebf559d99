/* dx_apply.h: the long-track procedure of Demucs (apply_model with the outer
 * normalisation of the official Separator), independent of any one graph.
 *
 * A model is reached through a forward callback (dx_apply_model), so the same
 * procedure runs a checkpoint (dx_model), a bag of them, or a small function in
 * a test. For a track mix [channels][length] it:
 *   - normalises by the mean and unbiased std (+1e-8) of the mono mix (and
 *     undoes it on every stem at the end);
 *   - for every model of the bag, for every shift (offsets in [0, samplerate/2],
 *     22050 at 44.1 kHz, drawn from a seeded Mersenne Twister that gives the same numbers as
 *     Python's random.seed(seed); random.randint(0, 22050)), splits the
 *     shifted track into segments with overlap, runs each chunk at the model's
 *     valid length padded centred around itself (real audio where it exists,
 *     zeros outside), centre-trims, and blends chunks with triangular weights;
 *   - weights models per source: out[k] = sum_m w[m][k] out_m[k] / sum_m w[m][k].
 *
 * Memory: dx_apply_stream reads the track through a callback and hands the
 * finished output to another, in order, as soon as no chunk still to run can
 * touch it: besides a few chunk-sized buffers per worker it holds only the
 * open window of the blended output, [sources][channels][segment + (jobs+1)
 * strides], whatever the track's length. Every (model, shift) pass runs in
 * step with the others: chunks go in order of their start in the track.
 * dx_apply_run is the same procedure over buffers in memory.
 *
 * Threading: dx_apply_run and dx_apply_stream run up to params.jobs forwards
 * at once on threads of their own (worker index 0..jobs-1 passed to the
 * callback); chunk outputs are folded in a fixed order, so results do not
 * depend on jobs. The progress, read and write callbacks are called from the
 * calling thread. */
#ifndef DX_APPLY_H
#define DX_APPLY_H

#include <stddef.h>
#include <stdint.h>

#include "dx_error.h"

/* One model as the procedure sees it. */
typedef struct {
  int n_sources;
  int channels;
  int samplerate;
  double segment;   /* seconds to split at when params.segment is 0 */
  int fixed_length; /* 1 for HTDemucs: params.segment then sets the run length, and may not exceed segment */
  /* Length to run a chunk of `length` samples at (>= length); NULL: the chunk's own length. */
  size_t (*valid_length)(void *user, size_t length);
  /* in [channels][length] -> out [n_sources][channels][length], both host
   * memory owned by the procedure. worker is in [0, params.jobs). */
  dx_status (*forward)(void *user, int worker, const float *in, size_t length, float *out, dx_errbuf *err);
  void *user;
} dx_apply_model;

/* Called after every chunk with the chunks done and the total for the whole
 * run (all models and shifts). Return nonzero to stop: the run then returns
 * DX_ERR_CANCELLED. */
typedef int (*dx_apply_progress_fn)(void *user, size_t done, size_t total);

typedef struct {
  int shifts;              /* random shifts averaged (default 1; 0 = none) */
  double overlap;          /* between segments, default 0.25, in [0, 1) */
  double transition_power; /* triangle exponent, default 1 (>= 1) */
  double segment;          /* seconds; 0 = each model's own */
  int split;               /* default 1; 0 runs the whole track at once */
  int normalize;           /* default 1: the outer mean/std normalisation */
  uint64_t seed;           /* shift generator seed, default 0 */
  int jobs;                /* parallel forwards, default 1 */
  dx_apply_progress_fn progress;
  void *progress_user;
} dx_apply_params;

dx_apply_params dx_apply_default_params(void);

/* Run the bag models[0..n_models) on mix [channels][length] (planar, not
 * modified) into out [n_sources][channels][length] (caller-allocated; every
 * element is written). weights is [n_models][n_sources] row-major, or NULL
 * for all ones; every source needs a positive weight sum. All models must
 * agree on sources, channels and sample rate. Returns DX_ERR_INVALID for
 * inconsistent arguments (details in err), DX_ERR_NOMEM, DX_ERR_CANCELLED,
 * or the first error a forward returned; out is then undefined. */
dx_status dx_apply_run(const dx_apply_model *models, int n_models, const float *weights, const float *mix,
                       size_t length, const dx_apply_params *params, float *out, dx_errbuf *err);

/* The track as dx_apply_stream sees it. */
typedef struct {
  size_t length; /* samples per channel */
  /* Copy samples [offset, offset + n) of every channel (offset + n <= length)
   * to dst[c * stride + i]. Called for the normalisation statistics (twice,
   * in order) and for every chunk (in order of chunk start, overlapping). */
  dx_status (*read)(void *user, size_t offset, size_t n, float *dst, size_t stride, dx_errbuf *err);
  void *read_user;
  /* Take the final output for samples [offset, offset + n), src
   * [sources][channels][n] (valid during the call only). Called in order,
   * every sample exactly once; a non-OK return stops the run with it. */
  dx_status (*write)(void *user, size_t offset, size_t n, const float *src, dx_errbuf *err);
  void *write_user;
} dx_apply_io;

/* The whole track in memory behind a dx_apply_io: mix [channels][length] is
 * read, out [planes][length] (planes = sources x channels) is written.
 * dx_apply_mem_io fills io to read and write m, which must outlive the run. */
typedef struct {
  const float *mix;
  float *out;
  size_t length;
  int channels, planes;
} dx_apply_mem;
void dx_apply_mem_io(dx_apply_mem *m, dx_apply_io *io);

/* The same as dx_apply_run with the track read and the result written through
 * io, in bounded memory. Statuses as dx_apply_run, or the first non-OK status
 * a read or write returned (they write their own details into err). */
dx_status dx_apply_stream(const dx_apply_model *models, int n_models, const float *weights, const dx_apply_io *io,
                          const dx_apply_params *p, dx_errbuf *err);

/* The shift generator: MT19937 seeded as CPython's random.seed(int), and
 * randint(a, b) inclusive drawing as CPython does, so a run's offsets can be
 * reproduced with Python. Plain data; one per run. */
typedef struct {
  uint32_t mt[624];
  int mti;
} dx_apply_rng;

void dx_apply_rng_seed(dx_apply_rng *r, uint64_t seed);
uint32_t dx_apply_rng_randint(dx_apply_rng *r, uint32_t a, uint32_t b);

#endif
