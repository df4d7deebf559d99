/* dx_model_impl.h: what a Demucs graph family (HTDemucs, HDemucs, Demucs)
 * implements for dx_model (engine/models/model.c), and the helpers it gets:
 *
 * - dx_graph_class: one entry per checkpoint class in model.c's registry
 *   table (build from a checkpoint, free, valid_length, forward).
 * - dx_params: the weights a graph uses, in host memory, bound once per
 *   device kind (uploaded with be->upload on first use, then shared).
 * - dx_run: one forward call's context: the backend, a bump arena of
 *   activations in backend memory sized by a dry run (same code, ops
 *   skipped), the observer.
 *
 * Graph code never touches activation floats: it allocates with dx_run_alloc
 * and calls backend ops through DX_NN()/DX_BE(), so the same code runs on
 * every backend.
 *
 * Threading: a built graph and its dx_params are read-only after building
 * (binding is internally locked); a dx_run belongs to one call. */
#ifndef DX_MODEL_IMPL_H
#define DX_MODEL_IMPL_H

#include <pthread.h>
#include <stddef.h>

#include "dx_backend.h"
#include "dx_checkpoint.h"
#include "dx_model.h"
#include "dx_nn_ops.h"

/* ---- weights ---- */

typedef struct dx_params dx_params;
typedef int dx_param_id; /* index into a dx_params; -1 = none */

dx_params *dx_params_new(void);                  /* NULL on NOMEM */
void dx_params_free(dx_params *ps);              /* releases device copies too; NULL no-op */
/* Take a checkpoint tensor (shape checked as in dx_checkpoint_expect; the
 * floats are copied). Returns its id or -1 with *st/err set. */
dx_param_id dx_params_take(dx_params *ps, const dx_checkpoint *ck, const char *name, int ndim, const int64_t *shape,
                           dx_status *st, dx_errbuf *err);
/* As dx_params_take, -1 with DX_OK when the tensor is absent (optional bias). */
dx_param_id dx_params_take_opt(dx_params *ps, const dx_checkpoint *ck, const char *name, int ndim,
                               const int64_t *shape, dx_status *st, dx_errbuf *err);
/* Add a derived host array (n floats, copied). */
dx_param_id dx_params_add(dx_params *ps, const float *data, size_t n, dx_status *st);
size_t dx_params_count_floats(const dx_params *ps);
/* Host copy of a parameter (for derived-weight preparation while building). */
float *dx_params_host(dx_params *ps, dx_param_id id);
/* Device pointers of every parameter on be's device, by id: the host arrays
 * on the CPU, else one block uploaded on first use through be (that backend
 * must outlive the dx_params). Errors: the backend's alloc/upload status. */
dx_status dx_params_bind(dx_params *ps, dx_backend *be, const float *const **out, dx_errbuf *err);

/* ---- one forward call ---- */

typedef struct {
  dx_backend *be;
  int dry;            /* 1: sizing pass, ops are skipped, pointers are fake */
  char *base;         /* arena in backend memory (NULL while dry) */
  size_t used, peak, cap;
  const float *const *w; /* device pointers of the bound params, by id */
  dx_model_observer obs;
  void *obs_user;
  dx_errbuf *err;
  int prof;           /* DEMIX_PROFILE: time every op (model_profile.c) */
  double prof_t0;
} dx_run;

/* Arena allocation (256-byte aligned). Dry runs only count. On a real run
 * beyond cap returns NULL (a sizing bug): callers return DX_ERR_INTERNAL. */
float *dx_run_alloc(dx_run *r, size_t nfloats);
static inline size_t dx_run_mark(const dx_run *r) { return r->used; }
static inline void dx_run_release(dx_run *r, size_t mark) { r->used = mark; }
/* Device pointer of a parameter (NULL for id -1). */
static inline const float *dx_run_w(const dx_run *r, dx_param_id id) { return id < 0 ? NULL : r->w[id]; }
/* Report a tensor to the observer (downloads it; no-op when dry or none set). */
dx_status dx_run_observe(dx_run *r, const char *name, const float *dev, const size_t *shape, int ndim);

/* Call a backend nn op / memory op, skipped in dry runs, timed under the
 * op's name when profiling (dx_prof_begin runs first: comma operator):
 *   DX_TRY(DX_NN(r, conv1d, x, w, b, y, ...));  DX_TRY(DX_BE(r, memset0, p, bytes)); */
#define DX_NN(r, op, ...)                                                                                          \
  ((r)->dry    ? DX_OK                                                                                             \
   : (r)->prof ? (dx_prof_begin(r), dx_prof_end(r, #op, (r)->be->nn->op((r)->be, __VA_ARGS__)))                   \
               : (r)->be->nn->op((r)->be, __VA_ARGS__))
#define DX_BE(r, op, ...)                                                                                          \
  ((r)->dry    ? DX_OK                                                                                             \
   : (r)->prof ? (dx_prof_begin(r), dx_prof_end(r, #op, (r)->be->op((r)->be, __VA_ARGS__)))                        \
               : (r)->be->op((r)->be, __VA_ARGS__))
/* Profiling (model_profile.c): begin waits for the backend's queued work and
 * starts the clock; end waits for the op's, adds the time to the op's line
 * of the process-wide profile, and passes the op's status through. */
void dx_prof_begin(dx_run *r);
dx_status dx_prof_end(dx_run *r, const char *op, dx_status st);
/* Add seconds to the line `what` (a static string) of the profile. */
void dx_prof_add(const char *what, double seconds);
#define DX_TRY(expr)                                                                                               \
  do {                                                                                                             \
    dx_status dx_try_st_ = (expr);                                                                                 \
    if (dx_try_st_ != DX_OK) return dx_try_st_;                                                                    \
  } while (0)

/* ---- graph classes ---- */

typedef struct {
  const char *module;    /* "demucs.htdemucs" */
  const char *name;      /* "HTDemucs" */
  dx_model_class klass;
  /* Build from a checkpoint: fill info (sources, segment, samplerate,
   * audio_channels; params is filled by model.c), take weights into *params
   * (created by model.c) and return the graph in *graph. Errors: DX_ERR_MODEL
   * with details (missing tensors, inconsistent kwargs), DX_ERR_UNSUPPORTED. */
  dx_status (*build)(const dx_checkpoint *ck, dx_params *params, dx_model_info *info, void **graph,
                     dx_errbuf *err);
  void (*free)(void *graph);
  size_t (*valid_length)(const void *graph, size_t length);
  /* in_dev [audio_channels][length], out_dev [sources][audio_channels][length],
   * both in r's backend memory (out_dev outside the arena). */
  dx_status (*forward)(const void *graph, dx_run *r, const float *in_dev, size_t length, float *out_dev);
} dx_graph_class;

/* Graph families (engine/models/htdemucs*.c, hdemucs*.c, demucs_v3*.c). */
extern const dx_graph_class dx_htdemucs_class;
extern const dx_graph_class dx_hdemucs_class;    /* engine/models/hdemucs.c */
extern const dx_graph_class dx_demucs_v3_class; /* engine/models/demucs_v3.c */

/* Load from a checkpoint already read (the model keeps what it needs; ck may
 * be freed afterwards). Errors as dx_model_load. */
dx_status dx_model_from_checkpoint(const dx_checkpoint *ck, dx_model **out, dx_errbuf *err);
/* Load from a buffer in memory (for fuzzing and tests). */
dx_status dx_model_load_buffer(const void *data, size_t size, dx_model **out, dx_errbuf *err);

#endif
