/* htdemucs_layers.c: HTDemucs encoder/decoder layers (HEncLayer,
 * HDecLayer) of both branches and the DConv residual branch, as backend op
 * sequences on a dx_run (SPEC.md section 5).
 * Threading: build once; forward per call. */
#include <stdio.h>
#include <string.h>

#include "htdemucs_impl.h"

#define TAKE(id, name, nd, ...)                                                                                      \
  do {                                                                                                               \
    const int64_t shp_[] = {__VA_ARGS__};                                                                            \
    dx_status st_;                                                                                                   \
    (id) = dx_params_take(ps, ck, name, nd, shp_, &st_, err);                                                        \
    if (st_) return st_;                                                                                             \
  } while (0)

static const char *pname(char *buf, size_t n, const char *prefix, const char *suffix) {
  snprintf(buf, n, "%s.%s", prefix, suffix);
  return buf;
}

/* ---- DConv ---- */

dx_status ht_dconv_build(ht_dconv *d, const dx_checkpoint *ck, dx_params *ps, const char *prefix, int channels,
                         int depth, double compress, dx_errbuf *err) {
  char nb[256];
  memset(d, 0, sizeof *d);
  d->channels = channels;
  d->depth = depth < 0 ? -depth : depth;
  if (d->depth > HT_MAX_DCONV) return dx_fail(err, DX_ERR_UNSUPPORTED, "DConv depth %d", d->depth);
  int hidden = (int)(channels / compress);
  if (hidden < 1) return dx_fail(err, DX_ERR_MODEL, "DConv of %d channels with compression %g", channels, compress);
  for (int i = 0; i < d->depth; i++) {
    ht_dconv_layer *l = &d->l[i];
    char pre[200];
    snprintf(pre, sizeof pre, "%s.layers.%d", prefix, i);
    l->hidden = hidden;
    l->kernel = 3;
    l->dilation = depth > 0 ? 1 << i : 1;
    TAKE(l->w0, pname(nb, sizeof nb, pre, "0.weight"), 3, hidden, channels, 3);
    TAKE(l->b0, pname(nb, sizeof nb, pre, "0.bias"), 1, hidden);
    TAKE(l->gn1_w, pname(nb, sizeof nb, pre, "1.weight"), 1, hidden);
    TAKE(l->gn1_b, pname(nb, sizeof nb, pre, "1.bias"), 1, hidden);
    TAKE(l->w1, pname(nb, sizeof nb, pre, "3.weight"), 3, 2 * channels, hidden, 1);
    TAKE(l->b1, pname(nb, sizeof nb, pre, "3.bias"), 1, 2 * channels);
    TAKE(l->gn2_w, pname(nb, sizeof nb, pre, "4.weight"), 1, 2 * channels);
    TAKE(l->gn2_b, pname(nb, sizeof nb, pre, "4.bias"), 1, 2 * channels);
    TAKE(l->scale, pname(nb, sizeof nb, pre, "6.scale"), 1, channels);
  }
  return DX_OK;
}

dx_status ht_dconv_forward(const ht_dconv *d, dx_run *r, float *x, int batch, int len) {
  int C = d->channels;
  for (int i = 0; i < d->depth; i++) {
    const ht_dconv_layer *l = &d->l[i];
    size_t mark = dx_run_mark(r);
    float *h = dx_run_alloc(r, (size_t)batch * l->hidden * len);
    float *h2 = dx_run_alloc(r, (size_t)batch * 2 * C * len);
    float *g = dx_run_alloc(r, (size_t)batch * C * len);
    if (!h || !h2 || !g) return DX_ERR_INTERNAL;
    DX_TRY(DX_NN(r, conv1d, x, dx_run_w(r, l->w0), dx_run_w(r, l->b0), h, batch, C, len, l->hidden, l->kernel, 1,
                 l->dilation * (l->kernel / 2), l->dilation));
    DX_TRY(DX_NN(r, group_norm, h, h, batch, l->hidden, len, 1, dx_run_w(r, l->gn1_w), dx_run_w(r, l->gn1_b), 1e-5f, 0));
    DX_TRY(DX_NN(r, gelu, h, h, (long long)batch * l->hidden * len));
    DX_TRY(DX_NN(r, conv1d, h, dx_run_w(r, l->w1), dx_run_w(r, l->b1), h2, batch, l->hidden, len, 2 * C, 1, 1, 0, 1));
    DX_TRY(DX_NN(r, group_norm, h2, h2, batch, 2 * C, len, 1, dx_run_w(r, l->gn2_w), dx_run_w(r, l->gn2_b), 1e-5f, 0));
    DX_TRY(DX_NN(r, glu, h2, g, batch, C, len));
    DX_TRY(DX_NN(r, add_scaled, g, x, batch, C, len, dx_run_w(r, l->scale)));
    dx_run_release(r, mark);
  }
  return DX_OK;
}

/* DConv on a frequency-branch tensor [C][F][T]: rows of F as the batch. */
static dx_status dconv_freq(const ht_dconv *d, dx_run *r, float *x, int C, int F, int T) {
  size_t mark = dx_run_mark(r);
  float *t = dx_run_alloc(r, (size_t)C * F * T);
  if (!t) return DX_ERR_INTERNAL;
  const int shp[3] = {C, F, T}, perm[3] = {1, 0, 2}, shp2[3] = {F, C, T};
  DX_TRY(DX_NN(r, permute, x, t, 3, shp, perm));
  DX_TRY(ht_dconv_forward(d, r, t, F, T));
  DX_TRY(DX_NN(r, permute, t, x, 3, shp2, perm));
  dx_run_release(r, mark);
  return DX_OK;
}

/* GroupNorm of a layer over [C][n] (one batch item), in place; no-op without norm. */
static dx_status layer_norm_gn(const ht_layer *l, dx_run *r, float *x, int C, long long n, dx_param_id w,
                               dx_param_id b) {
  if (!l->norm) return DX_OK;
  return DX_NN(r, group_norm, x, x, 1, C, (int)n, l->groups, dx_run_w(r, w), dx_run_w(r, b), 1e-5f, 0);
}

/* A conv weight [o][i][k] of the time branch, [o][i][k][k2] of the frequency branch. */
static dx_status take_conv_w(const ht_layer *l, const dx_checkpoint *ck, dx_params *ps, const char *name, int o, int i,
                             int k, int k2, dx_param_id *id, dx_errbuf *err) {
  if (l->freq) {
    TAKE(*id, name, 4, o, i, k, k2);
  } else {
    TAKE(*id, name, 3, o, i, k);
  }
  return DX_OK;
}

/* The rewrite conv of C channels (C -> 2C) and, with norm, its GroupNorm
 * `norm` ("norm1" / "norm2") into *nw, *nb; nothing without rewrite. */
static dx_status take_rewrite(ht_layer *l, const dx_checkpoint *ck, dx_params *ps, const char *prefix, int C,
                              const char *norm, dx_param_id *nw, dx_param_id *nb, dx_errbuf *err) {
  if (!l->rewrite) return DX_OK;
  char name[256], nn[32];
  int rk = 1 + 2 * l->context;
  DX_TRY(take_conv_w(l, ck, ps, pname(name, sizeof name, prefix, "rewrite.weight"), 2 * C, C, rk, rk, &l->rw_w, err));
  TAKE(l->rw_b, pname(name, sizeof name, prefix, "rewrite.bias"), 1, 2 * C);
  if (l->norm) {
    snprintf(nn, sizeof nn, "%s.weight", norm);
    TAKE(*nw, pname(name, sizeof name, prefix, nn), 1, 2 * C);
    snprintf(nn, sizeof nn, "%s.bias", norm);
    TAKE(*nb, pname(name, sizeof name, prefix, nn), 1, 2 * C);
  }
  return DX_OK;
}

/* Rewrite conv, GroupNorm (nw, nb) and GLU of x [C][n] into out [C][n], or a
 * plain copy without rewrite; n = F*T (F rows of T frames) for the frequency
 * branch, T for the time branch. z is left on the run. */
static dx_status layer_rewrite(const ht_layer *l, dx_run *r, const float *x, float *out, int C, int F, int T,
                               dx_param_id nw, dx_param_id nb) {
  long long n = l->freq ? (long long)F * T : T;
  if (!l->rewrite) return DX_BE(r, copy, out, x, (size_t)C * n * sizeof(float));
  int rk = 1 + 2 * l->context;
  float *z = dx_run_alloc(r, (size_t)2 * C * n);
  if (!z) return DX_ERR_INTERNAL;
  if (l->freq)
    DX_TRY(DX_NN(r, conv2d, x, dx_run_w(r, l->rw_w), dx_run_w(r, l->rw_b), z, 1, C, F, T, 2 * C, rk, rk, 1, 1,
                 l->context, l->context));
  else
    DX_TRY(DX_NN(r, conv1d, x, dx_run_w(r, l->rw_w), dx_run_w(r, l->rw_b), z, 1, C, T, 2 * C, rk, 1, l->context, 1));
  DX_TRY(layer_norm_gn(l, r, z, 2 * C, n, nw, nb));
  return DX_NN(r, glu, z, out, 1, C, n);
}

/* ---- encoder ---- */

dx_status ht_enc_build(ht_layer *l, const dx_checkpoint *ck, dx_params *ps, const char *prefix, dx_errbuf *err) {
  char nb[256];
  int K = l->kernel, ci = l->chin, co = l->chout;
  DX_TRY(take_conv_w(l, ck, ps, pname(nb, sizeof nb, prefix, "conv.weight"), co, ci, K, 1, &l->conv_w, err));
  TAKE(l->conv_b, pname(nb, sizeof nb, prefix, "conv.bias"), 1, co);
  l->n1_w = l->n1_b = l->n2_w = l->n2_b = l->rw_w = l->rw_b = -1;
  if (l->norm) {
    TAKE(l->n1_w, pname(nb, sizeof nb, prefix, "norm1.weight"), 1, co);
    TAKE(l->n1_b, pname(nb, sizeof nb, prefix, "norm1.bias"), 1, co);
  }
  return take_rewrite(l, ck, ps, prefix, co, "norm2", &l->n2_w, &l->n2_b, err);
}

dx_status ht_enc_forward(const ht_layer *l, dx_run *r, const float *x, int F, long long len, float **out) {
  int ci = l->chin, co = l->chout, K = l->kernel, S = l->stride;
  long long n_out; /* elements per channel of the output */
  long long Fo = 0, Lo = 0;
  if (l->freq) {
    Fo = (F + 2LL * l->pad - K) / S + 1;
    n_out = Fo * len; /* len = T for the frequency branch */
  } else {
    Lo = (len + S - 1) / S; /* padded to a multiple of the stride, then k=2S-ish conv */
    long long lp = Lo * S;
    Lo = (lp + 2LL * l->pad - K) / S + 1;
    n_out = Lo;
  }
  float *y = dx_run_alloc(r, (size_t)co * n_out); /* the layer output, kept by the caller */
  if (!y) return DX_ERR_INTERNAL;
  size_t mark = dx_run_mark(r);
  float *h = dx_run_alloc(r, (size_t)co * n_out);
  if (!h) return DX_ERR_INTERNAL;
  if (l->freq) {
    DX_TRY(DX_NN(r, conv2d, x, dx_run_w(r, l->conv_w), dx_run_w(r, l->conv_b), h, 1, ci, F, (int)len, co, K, 1, S, 1,
                 l->pad, 0));
  } else {
    const float *src = x;
    long long lp = (len + S - 1) / S * S;
    if (lp != len) {
      float *xp = dx_run_alloc(r, (size_t)ci * lp);
      if (!xp) return DX_ERR_INTERNAL;
      DX_TRY(DX_NN(r, pad1d, x, xp, ci, (int)len, 0, (int)(lp - len), DX_PAD_ZERO));
      src = xp;
    }
    DX_TRY(DX_NN(r, conv1d, src, dx_run_w(r, l->conv_w), dx_run_w(r, l->conv_b), h, 1, ci, (int)lp, co, K, S, l->pad, 1));
  }
  DX_TRY(layer_norm_gn(l, r, h, co, n_out, l->n1_w, l->n1_b));
  DX_TRY(DX_NN(r, gelu, h, h, (long long)co * n_out));
  if (l->dconv.depth) {
    if (l->freq) DX_TRY(dconv_freq(&l->dconv, r, h, co, (int)Fo, (int)len));
    else DX_TRY(ht_dconv_forward(&l->dconv, r, h, 1, (int)n_out));
  }
  if (l->freq) DX_TRY(layer_rewrite(l, r, h, y, co, (int)Fo, (int)len, l->n2_w, l->n2_b));
  else DX_TRY(layer_rewrite(l, r, h, y, co, 1, (int)n_out, l->n2_w, l->n2_b));
  dx_run_release(r, mark);
  *out = y;
  return DX_OK;
}

/* ---- decoder ---- */

dx_status ht_dec_build(ht_layer *l, const dx_checkpoint *ck, dx_params *ps, const char *prefix, dx_errbuf *err) {
  char nb[256];
  int K = l->kernel, ci = l->chin, co = l->chout;
  DX_TRY(take_conv_w(l, ck, ps, pname(nb, sizeof nb, prefix, "conv_tr.weight"), ci, co, K, 1, &l->conv_w, err));
  TAKE(l->conv_b, pname(nb, sizeof nb, prefix, "conv_tr.bias"), 1, co);
  l->n1_w = l->n1_b = l->n2_w = l->n2_b = l->rw_w = l->rw_b = -1;
  if (l->norm) {
    TAKE(l->n2_w, pname(nb, sizeof nb, prefix, "norm2.weight"), 1, co);
    TAKE(l->n2_b, pname(nb, sizeof nb, prefix, "norm2.bias"), 1, co);
  }
  return take_rewrite(l, ck, ps, prefix, ci, "norm1", &l->n1_w, &l->n1_b, err);
}

dx_status ht_dec_forward(const ht_layer *l, dx_run *r, const float *x, const float *skip, int F, long long len,
                         long long out_len, float **out, float **pre_out) {
  int ci = l->chin, co = l->chout, K = l->kernel, S = l->stride;
  /* n_in: elements per channel entering; for freq, F rows of len (= T) frames */
  long long n_in = l->freq ? (long long)F * len : len;
  long long Fo = 0, n_out;
  if (l->freq) {
    Fo = (long long)(F - 1) * S + K - 2LL * l->pad;
    n_out = Fo * len;
  } else {
    n_out = out_len;
  }
  float *pre = dx_run_alloc(r, (size_t)ci * n_in);
  float *y = dx_run_alloc(r, (size_t)co * n_out);
  if (!pre || !y) return DX_ERR_INTERNAL;
  size_t mark = dx_run_mark(r);
  float *s = dx_run_alloc(r, (size_t)ci * n_in);
  if (!s) return DX_ERR_INTERNAL;
  DX_TRY(DX_NN(r, add, x, skip, s, (long long)ci * n_in));
  DX_TRY(layer_rewrite(l, r, s, pre, ci, F, (int)len, l->n1_w, l->n1_b));
  if (l->dconv.depth) {
    if (l->freq) DX_TRY(dconv_freq(&l->dconv, r, pre, ci, F, (int)len));
    else DX_TRY(ht_dconv_forward(&l->dconv, r, pre, 1, (int)len));
  }
  if (!l->norm) {
    /* transposed conv straight into the cropped window */
    if (l->freq)
      DX_TRY(DX_NN(r, conv_tr2d, pre, dx_run_w(r, l->conv_w), dx_run_w(r, l->conv_b), y, 1, ci, F, (int)len, co, K, 1,
                   S, 1, l->pad, 0, (int)Fo, (int)len));
    else
      DX_TRY(DX_NN(r, conv_tr1d, pre, dx_run_w(r, l->conv_w), dx_run_w(r, l->conv_b), y, 1, ci, (int)len, co, K, S,
                   l->pad, (int)out_len));
  } else {
    /* GroupNorm sees the whole transposed-conv output, then the crop */
    long long full = l->freq ? (long long)(F - 1) * S + K : (len - 1) * S + K;
    long long n_full = l->freq ? full * len : full;
    float *t = dx_run_alloc(r, (size_t)co * n_full);
    if (!t) return DX_ERR_INTERNAL;
    if (l->freq)
      DX_TRY(DX_NN(r, conv_tr2d, pre, dx_run_w(r, l->conv_w), dx_run_w(r, l->conv_b), t, 1, ci, F, (int)len, co, K, 1,
                   S, 1, 0, 0, (int)full, (int)len));
    else
      DX_TRY(DX_NN(r, conv_tr1d, pre, dx_run_w(r, l->conv_w), dx_run_w(r, l->conv_b), t, 1, ci, (int)len, co, K, S, 0,
                   (int)full));
    DX_TRY(layer_norm_gn(l, r, t, co, n_full, l->n2_w, l->n2_b));
    if (l->freq)
      DX_TRY(DX_NN(r, copy2d, t + (size_t)l->pad * len, n_full, y, n_out, co, n_out));
    else
      DX_TRY(DX_NN(r, copy2d, t + l->pad, n_full, y, n_out, co, n_out));
  }
  if (!l->last) DX_TRY(DX_NN(r, gelu, y, y, (long long)co * n_out));
  dx_run_release(r, mark);
  *out = y;
  *pre_out = pre;
  return DX_OK;
}
