/* htdemucs_impl.h: the HTDemucs (v4) graph's internal structures, shared by
 * htdemucs.c (kwargs, build, whole forward), htdemucs_layers.c (encoder and
 * decoder layers, DConv) and htdemucs_transformer.c (cross-domain
 * transformer). Parameters are ids into the model's dx_params.
 * Threading: built once, then read-only. */
#ifndef DX_HTDEMUCS_IMPL_H
#define DX_HTDEMUCS_IMPL_H

#include "dx_model_impl.h"

#define HT_MAX_DEPTH 8
#define HT_MAX_DCONV 4
#define HT_MAX_TLAYERS 16

/* One residual branch of DConv: conv(k, dilation) -> GN -> GELU -> 1x1 -> GN -> GLU -> LayerScale. */
typedef struct {
  int hidden, kernel, dilation;
  dx_param_id w0, b0, gn1_w, gn1_b, w1, b1, gn2_w, gn2_b, scale;
} ht_dconv_layer;

typedef struct {
  int channels, depth; /* depth 0: no DConv */
  ht_dconv_layer l[HT_MAX_DCONV];
} ht_dconv;

/* Encoder (HEncLayer) or decoder (HDecLayer) of either branch. */
typedef struct {
  int freq;             /* frequency branch (Conv2d (k,1)) or time branch (Conv1d) */
  int chin, chout, kernel, stride, pad;
  int norm, groups;     /* GroupNorm(groups) in the layer when norm */
  int rewrite, context; /* rewrite conv kernel 1 + 2*context */
  int last;             /* decoder: outermost layer, no GELU */
  dx_param_id conv_w, conv_b;   /* conv (encoder) or conv_tr (decoder) */
  dx_param_id rw_w, rw_b;       /* rewrite */
  dx_param_id n1_w, n1_b, n2_w, n2_b;
  ht_dconv dconv;
} ht_layer;

typedef struct {
  int cross;            /* cross-attention layer (else self-attention) */
  dx_param_id in_w, in_b, out_w, out_b, l1_w, l1_b, l2_w, l2_b;
  dx_param_id n1_w, n1_b, n2_w, n2_b, n3_w, n3_b, nout_w, nout_b, g1, g2;
} ht_tlayer;

typedef struct {
  int dim, heads, hidden, layers;
  int norm_first, norm_out, layer_scale, gelu;
  float weight_pos;
  dx_param_id norm_in_w, norm_in_b, norm_in_t_w, norm_in_t_b;
  dx_param_id pos2d, pos1d; /* [T*F][dim] (token = t*F + f) and [T2][dim], weight_pos applied */
  ht_tlayer f[HT_MAX_TLAYERS], t[HT_MAX_TLAYERS];
} ht_transformer;

typedef struct {
  int sources, audio_channels, channels, growth, depth, nfft, kernel, stride;
  long long training_length; /* every forward runs at this length */
  /* shapes at the training length */
  int frames;                       /* T of the frequency branch */
  int freqs[HT_MAX_DEPTH + 1];      /* F entering encoder i (freqs[depth] at the bottom) */
  long long tlen[HT_MAX_DEPTH + 1]; /* time-branch length entering encoder i */
  int fch[HT_MAX_DEPTH + 1];        /* channels entering encoder i */
  ht_layer enc[HT_MAX_DEPTH], tenc[HT_MAX_DEPTH], dec[HT_MAX_DEPTH], tdec[HT_MAX_DEPTH];
  dx_param_id freq_emb; /* [C0][F1]: 0.2 * 10 * embedding^T, or -1 */
  int bottom_channels;
  dx_param_id up_w, up_b, down_w, down_b, up_t_w, up_t_b, down_t_w, down_t_b;
  int has_transformer;
  ht_transformer tr;
} htdemucs;

/* htdemucs_layers.c */
dx_status ht_dconv_build(ht_dconv *d, const dx_checkpoint *ck, dx_params *ps, const char *prefix, int channels,
                         int depth, double compress, dx_errbuf *err);
/* x [batch][C][len], in place. */
dx_status ht_dconv_forward(const ht_dconv *d, dx_run *r, float *x, int batch, int len);
dx_status ht_enc_build(ht_layer *l, const dx_checkpoint *ck, dx_params *ps, const char *prefix, dx_errbuf *err);
dx_status ht_dec_build(ht_layer *l, const dx_checkpoint *ck, dx_params *ps, const char *prefix, dx_errbuf *err);
/* Encoder: x [chin][F][T] (freq) or [chin][len] (time) -> y, allocated from
 * the arena at the current mark (the caller keeps it). F is the number of
 * frequency rows (freq) and len the frames (freq) or samples (time). */
dx_status ht_enc_forward(const ht_layer *l, dx_run *r, const float *x, int F, long long len, float **y);
/* Decoder: x + skip -> y (cropped to out_len for time, F*stride for freq),
 * pre = the tensor before the transposed conv (both allocated, kept). */
dx_status ht_dec_forward(const ht_layer *l, dx_run *r, const float *x, const float *skip, int F, long long len,
                         long long out_len, float **y, float **pre);

/* htdemucs_transformer.c */
dx_status ht_transformer_build(ht_transformer *t, const dx_checkpoint *ck, dx_params *ps, int dim, int heads,
                               int layers, double hidden_scale, int F, int T, int T2, dx_errbuf *err);
/* x [dim][F][T] and xt [dim][T2], both updated in place. */
dx_status ht_transformer_forward(const ht_transformer *t, dx_run *r, float *x, int F, int T, float *xt, int T2);

#endif
