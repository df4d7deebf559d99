/* hdemucs.h: the HDemucs (Demucs v3 hybrid: hdemucs_mmi, MDX models) graph,
 * built from a checkpoint's kwargs with the official constructor's rules
 * (hdemucs.c) and run by hdemucs_forward.c. Internal to engine/models.
 *
 * Supported: hybrid with CaC (the released configurations), any depth,
 * channels, growth, strides, kernel sizes, norm_starts, DConv mode/depth/
 * compression, LSTM/attention start layers, hybrid_old. Refused with
 * DX_ERR_UNSUPPORTED: cac False (masking/Wiener), hybrid False, multi_freqs.
 *
 * Threading: a built hdemucs is read-only. */
#ifndef HDEMUCS_H
#define HDEMUCS_H

#include "demucs_v3_dconv.h"

#define HD_MAX_DEPTH 10

typedef struct {
  int freq, empty, last, kernel, stride, pad, chin, chout, groups, context, lstm, attn;
  v3_wb conv, norm_a, rewrite, norm_b; /* enc: conv,norm1,rewrite,norm2; dec: conv_tr,norm2,rewrite,norm1 */
  int has_dconv;
  v3_dconv dconv;
} hd_layer;

typedef struct {
  int sources, audio_channels, depth, nfft, hop, hybrid_old;
  int n_t;                   /* number of time-branch layers (frequency layers) */
  hd_layer enc[HD_MAX_DEPTH];  /* encoder[i] */
  hd_layer tenc[HD_MAX_DEPTH]; /* tencoder[i], i < n_t */
  hd_layer dec[HD_MAX_DEPTH];  /* decoder[j], j = 0 is the deepest */
  hd_layer tdec[HD_MAX_DEPTH]; /* tdecoder[j], j = 0 is the deepest */
  dx_param_id freq_emb;      /* [C][F]: freq_emb_scale * emb_scale * W^T, -1 if none */
  int emb_freqs, emb_channels;
} hdemucs;

dx_status hdemucs_forward(const hdemucs *m, dx_run *r, const float *in, size_t length, float *out);

#endif
