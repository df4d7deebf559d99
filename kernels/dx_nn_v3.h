/* dx_nn_v3.h: weight bundles for the Demucs v3 ops of dx_nn_ops.h (the
 * bidirectional LSTM and LocalState attention of the DConv branches). Every
 * pointer is in the backend's memory space; the structs themselves are
 * host values passed by pointer and only read during the call. */
#ifndef DX_NN_V3_H
#define DX_NN_V3_H

/* One direction of one nn.LSTM layer: w_ih [4H][in], w_hh [4H][H],
 * b_ih [4H], b_hh [4H], gate order i, f, g, o. */
typedef struct {
  const float *w_ih, *w_hh, *b_ih, *b_hh;
} dx_lstm_dir;

/* LocalState: 1x1 convolutions query/key/content/proj [C][C] + [C], and
 * query_decay [heads*ndecay][C] + [heads*ndecay] (NULL when ndecay is 0). */
typedef struct {
  const float *query_w, *query_b, *key_w, *key_b, *content_w, *content_b;
  const float *decay_w, *decay_b, *proj_w, *proj_b;
} dx_local_attn_w;

#endif
