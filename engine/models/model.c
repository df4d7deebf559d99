/* model.c: dx_model (dx_model.h): load a checkpoint, pick the graph family
 * its class names from the registry table below, and run forward calls:
 * bind the weights to the backend, size the activation arena with a dry run
 * (cached per length), upload the input, run, download the output.
 *
 * Threading: a loaded model is shared read-only; the arena-size cache and
 * weight binding are locked; each forward call has its own arena. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dx_model_impl.h"
#include "dx_util.h"

/* Graph families by checkpoint class. Add a line per family. */
static const dx_graph_class *const graph_classes[] = {
    &dx_htdemucs_class,
    &dx_hdemucs_class,
    &dx_demucs_v3_class,
};

struct dx_model {
  dx_model_info info;
  const dx_graph_class *cls;
  void *graph;
  dx_params *params;
  dx_model_observer obs;
  void *obs_user;
  pthread_mutex_t lock;
  size_t sized_len, sized_bytes; /* arena size of the last sized length */
};

dx_status dx_model_from_checkpoint(const dx_checkpoint *ck, dx_model **out, dx_errbuf *err) {
  *out = NULL;
  const char *mod = dx_checkpoint_class_module(ck), *name = dx_checkpoint_class_name(ck);
  const dx_graph_class *cls = NULL;
  for (size_t i = 0; i < sizeof graph_classes / sizeof graph_classes[0]; i++)
    if (!strcmp(graph_classes[i]->module, mod) && !strcmp(graph_classes[i]->name, name)) cls = graph_classes[i];
  if (!cls) return dx_fail(err, DX_ERR_MODEL, "%s models (%s.%s) are not supported by this build", name, mod, name);
  dx_model *m = calloc(1, sizeof *m);
  if (!m) return DX_ERR_NOMEM;
  pthread_mutex_init(&m->lock, NULL);
  m->cls = cls;
  m->params = dx_params_new();
  if (!m->params) {
    dx_model_free(m);
    return DX_ERR_NOMEM;
  }
  m->info.klass = cls->klass;
  m->info.audio_channels = 2;
  m->info.samplerate = 44100;
  dx_status st = cls->build(ck, m->params, &m->info, &m->graph, err);
  if (st) {
    dx_model_free(m);
    return st;
  }
  m->info.params = dx_checkpoint_param_count(ck);
  *out = m;
  return DX_OK;
}

dx_status dx_model_load_buffer(const void *data, size_t size, dx_model **out, dx_errbuf *err) {
  dx_checkpoint *ck;
  dx_status st = dx_checkpoint_load_buffer(data, size, NULL, &ck, err);
  if (st) return st;
  st = dx_model_from_checkpoint(ck, out, err);
  dx_checkpoint_free(ck);
  return st;
}

dx_status dx_model_load(const char *path, dx_model **out, dx_errbuf *err) {
  dx_checkpoint *ck;
  dx_status st = dx_checkpoint_load(path, &ck, err);
  if (st) return st;
  st = dx_model_from_checkpoint(ck, out, err);
  dx_checkpoint_free(ck);
  return st;
}

void dx_model_free(dx_model *m) {
  if (!m) return;
  if (m->graph && m->cls) m->cls->free(m->graph);
  dx_params_free(m->params);
  pthread_mutex_destroy(&m->lock);
  free(m);
}

const dx_model_info *dx_model_get_info(const dx_model *m) { return &m->info; }

size_t dx_model_valid_length(const dx_model *m, size_t length) { return m->cls->valid_length(m->graph, length); }

void dx_model_set_observer(dx_model *m, dx_model_observer fn, void *user) {
  m->obs = fn;
  m->obs_user = user;
}

/* The op set every graph family uses; a backend missing one cannot run models. */
#define DX_BASE_NN_OPS(X)                                                                                           \
  X(conv1d) X(conv_tr1d) X(conv2d) X(conv_tr2d) X(gemm) X(linear) X(attention) X(softmax) X(group_norm)             \
  X(layer_norm) X(mean_std) X(standardize) X(destandardize) X(gelu) X(sigmoid) X(glu) X(add) X(scale_shift)          \
  X(channel_affine) X(add_scaled) X(permute) X(pad1d) X(copy2d) X(stft) X(istft)

static const char *missing_op(const dx_nn_ops *nn) {
  if (!nn) return "all";
#define DX_CHECK_OP(op) if (!nn->op) return #op;
  DX_BASE_NN_OPS(DX_CHECK_OP)
#undef DX_CHECK_OP
  return NULL;
}

dx_status dx_model_forward(dx_model *m, dx_backend *be, const float *in, size_t length, float *out, dx_errbuf *err) {
  if (!m || !be || !in || !out || length == 0) return dx_fail(err, DX_ERR_INVALID, "forward: bad arguments");
  const char *miss = missing_op(be->nn);
  if (miss) return dx_fail(err, DX_ERR_UNSUPPORTED, "the %s backend has no %s op", be->name, miss);
  const float *const *w;
  dx_status st = dx_params_bind(m->params, be, &w, err);
  if (st) return st;
  size_t C = (size_t)m->info.audio_channels, S = (size_t)m->info.n_sources;
  dx_run r = {.be = be, .w = w, .obs = m->obs, .obs_user = m->obs_user, .err = err};

  /* arena size for this length: a dry run of the same graph code */
  pthread_mutex_lock(&m->lock);
  size_t bytes = m->sized_len == length ? m->sized_bytes : 0;
  pthread_mutex_unlock(&m->lock);
  if (!bytes) {
    r.dry = 1;
    st = m->cls->forward(m->graph, &r, (const float *)(uintptr_t)64, length, (float *)(uintptr_t)128);
    if (st) return st;
    bytes = r.peak + 256;
    pthread_mutex_lock(&m->lock);
    m->sized_len = length;
    m->sized_bytes = bytes;
    pthread_mutex_unlock(&m->lock);
    r.dry = 0;
    r.used = r.peak = 0;
  }
  size_t in_bytes = C * length * sizeof(float), out_bytes = S * C * length * sizeof(float);
  void *arena = NULL, *din = NULL, *dout = NULL;
  if ((st = be->alloc(be, bytes, &arena)) || (st = be->alloc(be, in_bytes, &din)) ||
      (st = be->alloc(be, out_bytes, &dout))) {
    dx_fail(err, st, "cannot allocate %zu bytes of activations on %s", bytes + in_bytes + out_bytes, be->device_desc);
    goto done;
  }
  r.base = arena;
  r.cap = bytes;
  r.prof = dx_model_profile_enabled();
  double t0 = r.prof ? dx_now() : 0;
  if ((st = be->upload(be, din, in, in_bytes))) goto done;
  if (r.prof) dx_prof_add("upload", dx_now() - t0);
  if ((st = m->cls->forward(m->graph, &r, din, length, dout))) {
    if (!err || !err->msg[0]) dx_fail(err, st, "forward pass failed");
    goto done;
  }
  double t1 = r.prof ? dx_now() : 0;
  if ((st = be->download(be, out, dout, out_bytes))) goto done;
  st = be->sync(be);
  if (r.prof) {
    double t2 = dx_now();
    dx_prof_add("download", t2 - t1);
    dx_prof_add("forward", t2 - t0);
  }
done:
  be->free(be, dout);
  be->free(be, din);
  be->free(be, arena);
  return st;
}
