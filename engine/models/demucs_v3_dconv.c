/* demucs_v3_dconv.c: DConv residual branches, BLSTM and LocalState for the
 * Demucs v3 graphs (HDemucs and time-only Demucs), as the official
 * demucs/demucs.py defines them:
 *
 *   DConv layer d:  x += scale * GLU(GN(conv1x1_{h->2C}(
 *                        [LocalState]([BLSTM](GELU(GN(conv_{C->h}(x, k 3, dil 2^d))))))))
 *   BLSTM:          y = [x +] Linear_{2h->h}(LSTM_2layers(x)), over windows of
 *                   200 steps with stride 100, keeping each window's middle.
 *
 * State-dict layout of one DConv layer (nn.Sequential): 0 conv, 1 GN, 2 GELU,
 * then BLSTM and LocalState when present, then conv, GN, GLU, LayerScale.
 *
 * Threading: see demucs_v3_dconv.h. */
#include "demucs_v3_dconv.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

dx_param_id v3_take(v3_builder *b, int ndim, const int64_t *shape, const char *fmt, ...) {
  if (b->st != DX_OK) return -1;
  char name[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(name, sizeof name, fmt, ap);
  va_end(ap);
  dx_status st = DX_OK;
  dx_param_id id = dx_params_take(b->ps, b->ck, name, ndim, shape, &st, b->err);
  if (id < 0) b->st = st != DX_OK ? st : DX_ERR_MODEL;
  return id;
}

int v3_has(const v3_builder *b, const char *fmt, ...) {
  char name[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(name, sizeof name, fmt, ap);
  va_end(ap);
  return dx_checkpoint_find(b->ck, name) != NULL;
}

/* <prefix>.weight of wshape and <prefix>.bias of wshape[bias_dim] entries. */
static v3_wb take_wb_dim(v3_builder *b, const char *prefix, int ndim, const int64_t *wshape, int bias_dim) {
  v3_wb o;
  o.w = v3_take(b, ndim, wshape, "%s.weight", prefix);
  const int64_t bshape[1] = {wshape ? wshape[bias_dim] : -1};
  o.b = v3_take(b, 1, bshape, "%s.bias", prefix);
  return o;
}

v3_wb v3_take_wb(v3_builder *b, const char *prefix, int ndim, const int64_t *wshape) {
  return take_wb_dim(b, prefix, ndim, wshape, 0);
}

v3_wb v3_take_wb_tr(v3_builder *b, const char *prefix, int ndim, const int64_t *wshape) {
  return take_wb_dim(b, prefix, ndim, wshape, 1);
}

/* GroupNorm / LayerScale style 1-D parameters of n channels. */
static v3_wb take_norm(v3_builder *b, const char *prefix, int n) {
  const int64_t s[1] = {n};
  v3_wb o;
  o.w = v3_take(b, 1, s, "%s.weight", prefix);
  o.b = v3_take(b, 1, s, "%s.bias", prefix);
  return o;
}

dx_status v3_blstm_build(v3_builder *b, v3_blstm *m, const char *prefix, int dim, int layers, int max_steps,
                         int skip) {
  if (layers < 1 || layers > V3_LSTM_MAX_LAYERS)
    return dx_fail(b->err, DX_ERR_UNSUPPORTED, "%s: %d LSTM layers", prefix, layers);
  memset(m, 0, sizeof *m);
  m->dim = dim, m->layers = layers, m->max_steps = max_steps, m->skip = skip;
  for (int l = 0; l < layers; l++) {
    const int in = l == 0 ? dim : 2 * dim;
    for (int d = 0; d < 2; d++) {
      const char *sfx = d ? "_reverse" : "";
      const int64_t sih[2] = {4 * dim, in}, shh[2] = {4 * dim, dim}, sb[1] = {4 * dim};
      m->w_ih[l][d] = v3_take(b, 2, sih, "%s.lstm.weight_ih_l%d%s", prefix, l, sfx);
      m->w_hh[l][d] = v3_take(b, 2, shh, "%s.lstm.weight_hh_l%d%s", prefix, l, sfx);
      m->b_ih[l][d] = v3_take(b, 1, sb, "%s.lstm.bias_ih_l%d%s", prefix, l, sfx);
      m->b_hh[l][d] = v3_take(b, 1, sb, "%s.lstm.bias_hh_l%d%s", prefix, l, sfx);
    }
  }
  char name[256];
  snprintf(name, sizeof name, "%.240s.linear", prefix);
  const int64_t sl[2] = {dim, 2 * dim};
  m->linear = v3_take_wb(b, name, 2, sl);
  return b->st;
}

dx_status v3_blstm_forward(const v3_blstm *m, dx_run *r, const float *x, float *y, int batch, int len) {
  const int C = m->dim;
  int width = len, stride = len, nframes = 1, limit = 0;
  if (m->max_steps > 0 && len > m->max_steps) {
    width = m->max_steps;
    stride = width / 2;
    nframes = (len + stride - 1) / stride;
    limit = stride / 2;
  }
  const int nseq = batch * nframes;
  const size_t rows = (size_t)nseq * width;
  const size_t mark = dx_run_mark(r);
  float *f = dx_run_alloc(r, rows * C);
  float *h0 = dx_run_alloc(r, rows * 2 * C);
  float *h1 = m->layers > 1 ? dx_run_alloc(r, rows * 2 * C) : NULL;
  if (!f || !h0 || (m->layers > 1 && !h1)) return DX_ERR_INTERNAL;
  DX_TRY(DX_NN(r, frames_unfold, x, f, batch, C, len, width, stride, nframes));
  const float *in = f;
  float *out = h0;
  for (int l = 0; l < m->layers; l++) {
    const dx_lstm_dir fwd = {dx_run_w(r, m->w_ih[l][0]), dx_run_w(r, m->w_hh[l][0]), dx_run_w(r, m->b_ih[l][0]),
                             dx_run_w(r, m->b_hh[l][0])};
    const dx_lstm_dir rev = {dx_run_w(r, m->w_ih[l][1]), dx_run_w(r, m->w_hh[l][1]), dx_run_w(r, m->b_ih[l][1]),
                             dx_run_w(r, m->b_hh[l][1])};
    DX_TRY(DX_NN(r, lstm_bidir, in, out, nseq, width, l == 0 ? C : 2 * C, C, &fwd, &rev));
    in = out;
    out = out == h0 ? h1 : h0;
  }
  /* Linear 2C -> C into f (free again after the first layer). */
  DX_TRY(DX_NN(r, linear, in, dx_run_w(r, m->linear.w), dx_run_w(r, m->linear.b), f, (int)rows, 2 * C, C));
  if (m->skip) {
    if (y != x) DX_TRY(DX_BE(r, copy, y, x, (size_t)batch * C * len * sizeof(float)));
  } else {
    DX_TRY(DX_BE(r, memset0, y, (size_t)batch * C * len * sizeof(float)));
  }
  DX_TRY(DX_NN(r, frames_fold_add, f, y, batch, C, len, width, stride, nframes, limit));
  dx_run_release(r, mark);
  return DX_OK;
}

static dx_status local_state_build(v3_builder *b, v3_local_state *m, const char *prefix, int channels, int heads,
                                   int ndecay) {
  if (channels % heads) return dx_fail(b->err, DX_ERR_MODEL, "%s: %d channels for %d heads", prefix, channels, heads);
  m->channels = channels, m->heads = heads, m->ndecay = ndecay;
  char name[320];
  const int64_t sc[3] = {channels, channels, 1}, sd[3] = {heads * ndecay, channels, 1};
  snprintf(name, sizeof name, "%s.content", prefix);
  m->content = v3_take_wb(b, name, 3, sc);
  snprintf(name, sizeof name, "%s.query", prefix);
  m->query = v3_take_wb(b, name, 3, sc);
  snprintf(name, sizeof name, "%s.key", prefix);
  m->key = v3_take_wb(b, name, 3, sc);
  m->decay.w = m->decay.b = -1;
  if (ndecay) {
    snprintf(name, sizeof name, "%s.query_decay", prefix);
    m->decay = v3_take_wb(b, name, 3, sd);
  }
  snprintf(name, sizeof name, "%s.proj", prefix);
  m->proj = v3_take_wb(b, name, 3, sc);
  if (b->st == DX_OK && v3_has(b, "%s.query_freqs.weight", prefix))
    return dx_fail(b->err, DX_ERR_UNSUPPORTED, "%s: LocalState with nfreqs is not supported", prefix);
  return b->st;
}

dx_status v3_dconv_build(v3_builder *b, v3_dconv *m, const char *prefix, int channels, double compress, int depth,
                         int lstm, int attn) {
  memset(m, 0, sizeof *m);
  const int dilate = depth > 0;
  depth = depth < 0 ? -depth : depth;
  if (depth < 1 || depth > V3_DCONV_MAX_DEPTH)
    return dx_fail(b->err, DX_ERR_UNSUPPORTED, "%s: DConv depth %d", prefix, depth);
  m->channels = channels;
  m->hidden = (int)(channels / compress);
  m->depth = depth, m->kernel = 3, m->lstm = lstm, m->attn = attn;
  if (m->hidden < 1) return dx_fail(b->err, DX_ERR_MODEL, "%s: DConv hidden width %d", prefix, m->hidden);
  const int C = channels, h = m->hidden;
  char name[256];
  for (int d = 0; d < depth; d++) {
    int idx = 0;
    m->layer[d].dilation = dilate ? 1 << d : 1;
    const int64_t s1[3] = {h, C, m->kernel}, s2[3] = {2 * C, h, 1};
    snprintf(name, sizeof name, "%s.layers.%d.%d", prefix, d, idx);
    m->layer[d].conv1 = v3_take_wb(b, name, 3, s1);
    snprintf(name, sizeof name, "%s.layers.%d.%d", prefix, d, idx + 1);
    m->layer[d].gn1 = take_norm(b, name, h);
    idx = 3; /* after GELU */
    if (lstm) {
      snprintf(name, sizeof name, "%s.layers.%d.%d", prefix, d, idx++);
      DX_TRY(v3_blstm_build(b, &m->layer[d].blstm, name, h, 2, 200, 1));
    }
    if (attn) {
      snprintf(name, sizeof name, "%s.layers.%d.%d", prefix, d, idx++);
      DX_TRY(local_state_build(b, &m->layer[d].ls, name, h, 4, 4));
    }
    snprintf(name, sizeof name, "%s.layers.%d.%d", prefix, d, idx);
    m->layer[d].conv2 = v3_take_wb(b, name, 3, s2);
    snprintf(name, sizeof name, "%s.layers.%d.%d", prefix, d, idx + 1);
    m->layer[d].gn2 = take_norm(b, name, 2 * C);
    const int64_t ss[1] = {C};
    m->layer[d].scale = v3_take(b, 1, ss, "%s.layers.%d.%d.scale", prefix, d, idx + 3);
  }
  return b->st;
}

dx_status v3_group_norm(dx_run *r, const v3_wb *gn, int groups, float *x, int channels, long long len) {
  if (groups <= 0) return DX_OK;
  return DX_NN(r, group_norm, x, x, 1, channels, (int)len, groups, dx_run_w(r, gn->w), dx_run_w(r, gn->b), 1e-5f,
               0);
}

dx_status v3_dconv_forward(const v3_dconv *m, dx_run *r, float *x, int batch, int len) {
  const int C = m->channels, h = m->hidden;
  for (int d = 0; d < m->depth; d++) {
    const size_t mark = dx_run_mark(r);
    float *a = dx_run_alloc(r, (size_t)batch * h * len);
    float *z = dx_run_alloc(r, (size_t)batch * 2 * C * len);
    float *g = dx_run_alloc(r, (size_t)batch * C * len);
    if (!a || !z || !g) return DX_ERR_INTERNAL;
    const int dil = m->layer[d].dilation, pad = dil * (m->kernel / 2);
    DX_TRY(DX_NN(r, conv1d, x, dx_run_w(r, m->layer[d].conv1.w), dx_run_w(r, m->layer[d].conv1.b), a, batch, C, len,
                 h, m->kernel, 1, pad, dil));
    DX_TRY(DX_NN(r, group_norm, a, a, batch, h, len, 1, dx_run_w(r, m->layer[d].gn1.w),
                 dx_run_w(r, m->layer[d].gn1.b), 1e-5f, 0));
    DX_TRY(DX_NN(r, gelu, a, a, (long long)batch * h * len));
    if (m->lstm) DX_TRY(v3_blstm_forward(&m->layer[d].blstm, r, a, a, batch, len));
    if (m->attn) {
      const v3_local_state *ls = &m->layer[d].ls;
      const dx_local_attn_w w = {dx_run_w(r, ls->query.w),   dx_run_w(r, ls->query.b), dx_run_w(r, ls->key.w),
                                 dx_run_w(r, ls->key.b),     dx_run_w(r, ls->content.w), dx_run_w(r, ls->content.b),
                                 dx_run_w(r, ls->decay.w),   dx_run_w(r, ls->decay.b), dx_run_w(r, ls->proj.w),
                                 dx_run_w(r, ls->proj.b)};
      DX_TRY(DX_NN(r, local_attn, a, a, batch, h, len, ls->heads, ls->ndecay, &w));
    }
    DX_TRY(DX_NN(r, conv1d, a, dx_run_w(r, m->layer[d].conv2.w), dx_run_w(r, m->layer[d].conv2.b), z, batch, h, len,
                 2 * C, 1, 1, 0, 1));
    DX_TRY(DX_NN(r, group_norm, z, z, batch, 2 * C, len, 1, dx_run_w(r, m->layer[d].gn2.w),
                 dx_run_w(r, m->layer[d].gn2.b), 1e-5f, 0));
    DX_TRY(DX_NN(r, glu, z, g, batch, C, len));
    DX_TRY(DX_NN(r, add_scaled, g, x, batch, C, len, dx_run_w(r, m->layer[d].scale)));
    dx_run_release(r, mark);
  }
  return DX_OK;
}

dx_status v3_check_ops(dx_run *r) {
  const dx_nn_ops *nn = r->be->nn;
  if (r->dry) return DX_OK;
  if (!nn->lstm_bidir || !nn->frames_unfold || !nn->frames_fold_add || !nn->local_attn || !nn->resample)
    return dx_fail(r->err, DX_ERR_UNSUPPORTED, "backend %s has no Demucs v3 ops (LSTM, local attention, resample)",
                   r->be->name);
  return DX_OK;
}
