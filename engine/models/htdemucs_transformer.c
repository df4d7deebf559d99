/* htdemucs_transformer.c: the cross-domain transformer of HTDemucs
 * (CrossTransformerEncoder, SPEC.md section 6): input LayerNorms and
 * sinusoidal positions, alternating self- and cross-attention layers per
 * branch (PyTorch nn.MultiheadAttention semantics), LayerScale, GroupNorm(1)
 * outputs. Tokens are rows: frequency tokens t*F + f, time tokens t.
 * The positional tables are computed at build time with the float32
 * rounding steps of the reference implementation.
 * Threading: build once; forward per call. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "htdemucs_impl.h"

static dx_status take(dx_params *ps, const dx_checkpoint *ck, const char *name, int nd, const int64_t *shape,
                      dx_param_id *id, dx_errbuf *err) {
  dx_status st;
  *id = dx_params_take(ps, ck, name, nd, shape, &st, err);
  return st;
}

#define T1(id, fmt, a, n0)                                                                                           \
  do {                                                                                                               \
    char nb_[256];                                                                                                   \
    snprintf(nb_, sizeof nb_, fmt, a);                                                                               \
    const int64_t s_[1] = {n0};                                                                                      \
    DX_TRY(take(ps, ck, nb_, 1, s_, &(id), err));                                                                    \
  } while (0)
#define T2(id, fmt, a, n0, n1)                                                                                       \
  do {                                                                                                               \
    char nb_[256];                                                                                                   \
    snprintf(nb_, sizeof nb_, fmt, a);                                                                               \
    const int64_t s_[2] = {n0, n1};                                                                                  \
    DX_TRY(take(ps, ck, nb_, 2, s_, &(id), err));                                                                    \
  } while (0)

/* create_2d_sin_embedding, stored token-major [T*F][D] (token t*F + f). */
static float *pos2d_table(int D, int F, int T, float weight) {
  float *pe = malloc(sizeof(float) * (size_t)D * F * T);
  if (!pe) return NULL;
  int half = D / 2; /* d_model in the reference after halving */
  float lg = (float)(-(log(10000.0) / half));
  for (int t = 0; t < T; t++)
    for (int f = 0; f < F; f++) {
      float *row = pe + ((size_t)t * F + f) * D;
      for (int k = 0; k < half / 2; k++) {
        float div = (float)exp((double)(float)((float)(2 * k) * lg));
        float at = (float)t * div, af = (float)f * div;
        row[2 * k] = (float)sin((double)at) * weight;
        row[2 * k + 1] = (float)cos((double)at) * weight;
        row[half + 2 * k] = (float)sin((double)af) * weight;
        row[half + 2 * k + 1] = (float)cos((double)af) * weight;
      }
    }
  return pe;
}

/* create_sin_embedding: [T2][D], channels [0, D/2) cos, [D/2, D) sin. */
static float *pos1d_table(int D, int T2, float weight) {
  float *pe = malloc(sizeof(float) * (size_t)D * T2);
  if (!pe) return NULL;
  int half = D / 2;
  for (int j = 0; j < half; j++) {
    float e = (float)j / (float)(half - 1);
    float den = (float)pow(10000.0, (double)e);
    for (int t = 0; t < T2; t++) {
      float ph = (float)t / den;
      pe[(size_t)t * D + j] = (float)cos((double)ph) * weight;
      pe[(size_t)t * D + half + j] = (float)sin((double)ph) * weight;
    }
  }
  return pe;
}

dx_status ht_transformer_build(ht_transformer *t, const dx_checkpoint *ck, dx_params *ps, int dim, int heads,
                               int layers, double hidden_scale, int F, int T, int T2, dx_errbuf *err) {
  /* t->norm_first, norm_out, layer_scale, gelu, weight_pos and the cross flags are set by the caller */
  t->dim = dim;
  t->heads = heads;
  t->layers = layers;
  t->hidden = (int)(dim * hidden_scale);
  if (layers > HT_MAX_TLAYERS) return dx_fail(err, DX_ERR_UNSUPPORTED, "%d transformer layers", layers);
  if (dim % heads || dim % 4) return dx_fail(err, DX_ERR_MODEL, "transformer width %d with %d heads", dim, heads);
  const char *pre = "crosstransformer";
  T1(t->norm_in_w, "%s.norm_in.weight", pre, dim);
  T1(t->norm_in_b, "%s.norm_in.bias", pre, dim);
  T1(t->norm_in_t_w, "%s.norm_in_t.weight", pre, dim);
  T1(t->norm_in_t_b, "%s.norm_in_t.bias", pre, dim);
  for (int br = 0; br < 2; br++) {
    for (int i = 0; i < layers; i++) {
      ht_tlayer *l = br ? &t->t[i] : &t->f[i];
      char p[96];
      snprintf(p, sizeof p, "%s.%s.%d", pre, br ? "layers_t" : "layers", i);
      const char *att = l->cross ? "cross_attn" : "self_attn";
      char a[128];
      snprintf(a, sizeof a, "%s.%s", p, att);
      T2(l->in_w, "%s.in_proj_weight", a, 3 * dim, dim);
      T1(l->in_b, "%s.in_proj_bias", a, 3 * dim);
      T2(l->out_w, "%s.out_proj.weight", a, dim, dim);
      T1(l->out_b, "%s.out_proj.bias", a, dim);
      T2(l->l1_w, "%s.linear1.weight", p, t->hidden, dim);
      T1(l->l1_b, "%s.linear1.bias", p, t->hidden);
      T2(l->l2_w, "%s.linear2.weight", p, dim, t->hidden);
      T1(l->l2_b, "%s.linear2.bias", p, dim);
      T1(l->n1_w, "%s.norm1.weight", p, dim);
      T1(l->n1_b, "%s.norm1.bias", p, dim);
      T1(l->n2_w, "%s.norm2.weight", p, dim);
      T1(l->n2_b, "%s.norm2.bias", p, dim);
      l->n3_w = l->n3_b = l->nout_w = l->nout_b = l->g1 = l->g2 = -1;
      if (l->cross) {
        T1(l->n3_w, "%s.norm3.weight", p, dim);
        T1(l->n3_b, "%s.norm3.bias", p, dim);
      }
      if (t->norm_first && t->norm_out) {
        T1(l->nout_w, "%s.norm_out.weight", p, dim);
        T1(l->nout_b, "%s.norm_out.bias", p, dim);
      }
      if (t->layer_scale) {
        T1(l->g1, "%s.gamma_1.scale", p, dim);
        T1(l->g2, "%s.gamma_2.scale", p, dim);
      }
    }
  }
  float *p2 = pos2d_table(dim, F, T, t->weight_pos), *p1 = pos1d_table(dim, T2, t->weight_pos);
  dx_status st = DX_ERR_NOMEM;
  if (p2 && p1) {
    t->pos2d = dx_params_add(ps, p2, (size_t)dim * F * T, &st);
    if (!st) t->pos1d = dx_params_add(ps, p1, (size_t)dim * T2, &st);
  }
  free(p2);
  free(p1);
  return st;
}

/* Feed-forward block: y = W2 act(W1 x + b1) + b2, x [n][D] -> y [n][D]. */
static dx_status ffn(const ht_transformer *t, const ht_tlayer *l, dx_run *r, const float *x, float *y, int n) {
  size_t mark = dx_run_mark(r);
  float *h = dx_run_alloc(r, (size_t)n * t->hidden);
  if (!h) return DX_ERR_INTERNAL;
  DX_TRY(DX_NN(r, linear, x, dx_run_w(r, l->l1_w), dx_run_w(r, l->l1_b), h, n, t->dim, t->hidden));
  if (t->gelu) {
    DX_TRY(DX_NN(r, gelu, h, h, (long long)n * t->hidden));
  } else {
    return dx_fail(r->err, DX_ERR_UNSUPPORTED, "ReLU transformer");
  }
  DX_TRY(DX_NN(r, linear, h, dx_run_w(r, l->l2_w), dx_run_w(r, l->l2_b), y, n, t->hidden, t->dim));
  dx_run_release(r, mark);
  return DX_OK;
}

/* Multi-head attention of q [nq][D] over kv [nk][D] into o [nq][D] (out_proj applied). */
static dx_status mha(const ht_transformer *t, const ht_tlayer *l, dx_run *r, const float *q, int nq, const float *kv,
                     int nk, float *o) {
  int D = t->dim, dh = D / t->heads;
  size_t mark = dx_run_mark(r);
  float *qp = dx_run_alloc(r, (size_t)nq * D), *kvp = dx_run_alloc(r, (size_t)nk * 2 * D),
        *a = dx_run_alloc(r, (size_t)nq * D);
  if (!qp || !kvp || !a) return DX_ERR_INTERNAL;
  const float *w = dx_run_w(r, l->in_w), *b = dx_run_w(r, l->in_b);
  DX_TRY(DX_NN(r, linear, q, w, b, qp, nq, D, D));
  DX_TRY(DX_NN(r, linear, kv, w + (size_t)D * D, b + D, kvp, nk, D, 2 * D));
  DX_TRY(DX_NN(r, attention, qp, D, kvp, 2 * D, kvp + D, 2 * D, a, D, nq, nk, t->heads, dh, (float)(1.0 / sqrt((double)dh))));
  DX_TRY(DX_NN(r, linear, a, dx_run_w(r, l->out_w), dx_run_w(r, l->out_b), o, nq, D, D));
  dx_run_release(r, mark);
  return DX_OK;
}

/* One layer on x [n][D] (in place); kv [nk][D] for cross layers. */
static dx_status tlayer(const ht_transformer *t, const ht_tlayer *l, dx_run *r, float *x, int n, const float *kv,
                        int nk) {
  int D = t->dim;
  size_t mark = dx_run_mark(r);
  float *h = dx_run_alloc(r, (size_t)n * D), *o = dx_run_alloc(r, (size_t)n * D);
  float *hk = l->cross ? dx_run_alloc(r, (size_t)nk * D) : NULL;
  if (!h || !o || (l->cross && !hk)) return DX_ERR_INTERNAL;
  const float *g1 = dx_run_w(r, l->g1), *g2 = dx_run_w(r, l->g2);
  dx_param_id ffn_nw = l->cross ? l->n3_w : l->n2_w, ffn_nb = l->cross ? l->n3_b : l->n2_b;
  if (t->norm_first) {
    DX_TRY(DX_NN(r, layer_norm, x, h, n, D, dx_run_w(r, l->n1_w), dx_run_w(r, l->n1_b), 1e-5f));
    if (l->cross) {
      DX_TRY(DX_NN(r, layer_norm, kv, hk, nk, D, dx_run_w(r, l->n2_w), dx_run_w(r, l->n2_b), 1e-5f));
      DX_TRY(mha(t, l, r, h, n, hk, nk, o));
    } else {
      DX_TRY(mha(t, l, r, h, n, h, n, o));
    }
    DX_TRY(DX_NN(r, add_scaled, o, x, n, D, 1, g1));
    DX_TRY(DX_NN(r, layer_norm, x, h, n, D, dx_run_w(r, ffn_nw), dx_run_w(r, ffn_nb), 1e-5f));
    DX_TRY(ffn(t, l, r, h, o, n));
    DX_TRY(DX_NN(r, add_scaled, o, x, n, D, 1, g2));
    if (t->norm_out)
      DX_TRY(DX_NN(r, group_norm, x, x, 1, D, n, 1, dx_run_w(r, l->nout_w), dx_run_w(r, l->nout_b), 1e-5f, 1));
  } else {
    /* post-norm: x = norm1(x + g1 attn(x)); x = norm2(x + g2 ffn(x)) */
    DX_TRY(mha(t, l, r, x, n, l->cross ? kv : x, l->cross ? nk : n, o));
    DX_TRY(DX_NN(r, add_scaled, o, x, n, D, 1, g1));
    DX_TRY(DX_NN(r, layer_norm, x, x, n, D, dx_run_w(r, l->n1_w), dx_run_w(r, l->n1_b), 1e-5f));
    DX_TRY(ffn(t, l, r, x, o, n));
    DX_TRY(DX_NN(r, add_scaled, o, x, n, D, 1, g2));
    DX_TRY(DX_NN(r, layer_norm, x, x, n, D, dx_run_w(r, l->n2_w), dx_run_w(r, l->n2_b), 1e-5f));
  }
  dx_run_release(r, mark);
  return DX_OK;
}

dx_status ht_transformer_forward(const ht_transformer *t, dx_run *r, float *x, int F, int T, float *xt, int T2) {
  int D = t->dim, n = F * T;
  size_t mark = dx_run_mark(r);
  float *a = dx_run_alloc(r, (size_t)n * D), *b = dx_run_alloc(r, (size_t)T2 * D);
  float *a_old = dx_run_alloc(r, (size_t)n * D);
  if (!a || !b || !a_old) return DX_ERR_INTERNAL;
  /* [D][F][T] -> tokens [T][F][D]; [D][T2] -> [T2][D] */
  const int s3[3] = {D, F, T}, p3[3] = {2, 1, 0}, s2[2] = {D, T2}, p2[2] = {1, 0};
  DX_TRY(DX_NN(r, permute, x, a, 3, s3, p3));
  DX_TRY(DX_NN(r, permute, xt, b, 2, s2, p2));
  DX_TRY(DX_NN(r, layer_norm, a, a, n, D, dx_run_w(r, t->norm_in_w), dx_run_w(r, t->norm_in_b), 1e-5f));
  DX_TRY(DX_NN(r, add, a, dx_run_w(r, t->pos2d), a, (long long)n * D));
  DX_TRY(DX_NN(r, layer_norm, b, b, T2, D, dx_run_w(r, t->norm_in_t_w), dx_run_w(r, t->norm_in_t_b), 1e-5f));
  DX_TRY(DX_NN(r, add, b, dx_run_w(r, t->pos1d), b, (long long)T2 * D));
  for (int i = 0; i < t->layers; i++) {
    if (!t->f[i].cross) {
      DX_TRY(tlayer(t, &t->f[i], r, a, n, NULL, 0));
      DX_TRY(tlayer(t, &t->t[i], r, b, T2, NULL, 0));
    } else {
      DX_TRY(DX_BE(r, copy, a_old, a, (size_t)n * D * sizeof(float)));
      DX_TRY(tlayer(t, &t->f[i], r, a, n, b, T2));
      DX_TRY(tlayer(t, &t->t[i], r, b, T2, a_old, n));
    }
  }
  const int s3b[3] = {T, F, D};
  const int s2b[2] = {T2, D};
  DX_TRY(DX_NN(r, permute, a, x, 3, s3b, p3));
  DX_TRY(DX_NN(r, permute, b, xt, 2, s2b, p2));
  dx_run_release(r, mark);
  return DX_OK;
}
