/* demucs_v3_dconv.h: the pieces the two Demucs v3 graphs share (HDemucs in
 * hdemucs*.c, time-only Demucs in demucs_v3.c): the DConv residual branch
 * with its optional BLSTM and LocalState attention, the BLSTM on its own,
 * and small helpers for reading checkpoint tensors by printf-style names.
 *
 * Weights are dx_params ids taken while building; forward functions run on
 * a dx_run (arena + backend ops) and never touch activation floats.
 *
 * Threading: built structs are read-only; forward calls use only their run. */
#ifndef DEMUCS_V3_DCONV_H
#define DEMUCS_V3_DCONV_H

#include "dx_model_impl.h"

#define V3_DCONV_MAX_DEPTH 4
#define V3_LSTM_MAX_LAYERS 4

/* Building context: the checkpoint, the params being filled, the first error. */
typedef struct {
  const dx_checkpoint *ck;
  dx_params *ps;
  dx_errbuf *err;
  dx_status st;
} v3_builder;

/* Take a tensor by formatted name with ndim and shape (-1 = any);
 * -1 and b->st set on failure (later calls are no-ops after a failure). */
dx_param_id v3_take(v3_builder *b, int ndim, const int64_t *shape, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* 1 if the checkpoint has a tensor of that formatted name. */
int v3_has(const v3_builder *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* nn.Conv1d/Conv2d/ConvTranspose weights + bias by module prefix. */
typedef struct {
  dx_param_id w, b;
} v3_wb;
v3_wb v3_take_wb(v3_builder *b, const char *prefix, int ndim, const int64_t *wshape);
/* The same for transposed convolutions (weight [Cin][Cout][k...], bias [Cout]). */
v3_wb v3_take_wb_tr(v3_builder *b, const char *prefix, int ndim, const int64_t *wshape);

/* BLSTM (demucs.demucs.BLSTM): `layers` bidirectional LSTM layers of width
 * dim, Linear 2*dim -> dim, run in windows of max_steps (0 = whole sequence)
 * with 50 % overlap, optional residual. */
typedef struct {
  int dim, layers, max_steps, skip;
  dx_param_id w_ih[V3_LSTM_MAX_LAYERS][2], w_hh[V3_LSTM_MAX_LAYERS][2];
  dx_param_id b_ih[V3_LSTM_MAX_LAYERS][2], b_hh[V3_LSTM_MAX_LAYERS][2];
  v3_wb linear;
} v3_blstm;
dx_status v3_blstm_build(v3_builder *b, v3_blstm *m, const char *prefix, int dim, int layers, int max_steps,
                         int skip);
/* y[batch][dim][len] = BLSTM(x) (y may be x). */
dx_status v3_blstm_forward(const v3_blstm *m, dx_run *r, const float *x, float *y, int batch, int len);

/* LocalState (demucs.demucs.LocalState) with nfreqs 0. */
typedef struct {
  int channels, heads, ndecay;
  v3_wb content, query, key, decay, proj;
} v3_local_state;

/* DConv (demucs.demucs.DConv), norm on (GroupNorm(1, .)), GELU. */
typedef struct {
  int channels, hidden, depth, kernel, lstm, attn;
  struct {
    int dilation;
    v3_wb conv1, gn1, conv2, gn2;
    dx_param_id scale;
    v3_blstm blstm;
    v3_local_state ls;
  } layer[V3_DCONV_MAX_DEPTH];
} v3_dconv;

/* channels, compress (hidden = (int)(channels / compress)), depth (negative:
 * no dilation), lstm/attn flags; heads 4, ndecay 4, kernel 3 as the
 * released models. */
dx_status v3_dconv_build(v3_builder *b, v3_dconv *m, const char *prefix, int channels, double compress, int depth,
                         int lstm, int attn);
/* x[batch][channels][len] += the residual branches, in place. */
dx_status v3_dconv_forward(const v3_dconv *m, dx_run *r, float *x, int batch, int len);

/* GroupNorm + optional GELU helper: y = GN(x) with `groups` (0 = identity). */
dx_status v3_group_norm(dx_run *r, const v3_wb *gn, int groups, float *x, int channels, long long len);

/* DX_ERR_UNSUPPORTED (with a message) when the run's backend lacks the v3 ops. */
dx_status v3_check_ops(dx_run *r);

#endif
