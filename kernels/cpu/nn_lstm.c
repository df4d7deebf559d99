/* nn_lstm.c: CPU reference of the bidirectional LSTM layer and of the
 * framing helpers the Demucs v3 BLSTM uses (200-step windows, 50 % overlap).
 *
 * lstm_bidir follows PyTorch nn.LSTM (gate order i, f, g, o; both biases
 * added; zero initial state): the input projections of all steps are one
 * GEMM per direction, the recurrence one small GEMM per step over every
 * sequence at once. Output channels [0, H) are the forward direction,
 * [H, 2H) the reverse one, as nn.LSTM(bidirectional=True) writes them.
 *
 * Threading: no shared state; scratch is allocated per call. The GEMMs
 * may be split over the ops' pool (dx_cpu_sgemm). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dx_nn_ops.h"
#include "nn_cpu.h"
#include "nn_demucs3_cpu.h"

static inline float sigmoidf_(float x) { return 1.0f / (1.0f + expf(-x)); }

dx_status dx_cpu_nn_lstm_bidir(dx_backend *be, const float *x, float *y, int n_seq, int steps, int in_dim,
                               int hidden, const dx_lstm_dir *fwd, const dx_lstm_dir *rev) {
  (void)be;
  if (n_seq <= 0 || steps <= 0 || in_dim <= 0 || hidden <= 0 || !fwd || !rev) return DX_ERR_INVALID;
  const size_t H = (size_t)hidden, G = 4 * H, rows = (size_t)n_seq * (size_t)steps;
  float *gx = malloc(rows * G * sizeof *gx);
  float *g = malloc((size_t)n_seq * G * sizeof *g);
  float *h = malloc((size_t)n_seq * H * sizeof *h);
  float *c = malloc((size_t)n_seq * H * sizeof *c);
  if (!gx || !g || !h || !c) {
    free(gx), free(g), free(h), free(c);
    return DX_ERR_NOMEM;
  }
  for (int dir = 0; dir < 2; dir++) {
    const dx_lstm_dir *d = dir ? rev : fwd;
    /* gx[r][:] = x[r][:] @ w_ih^T + b_ih + b_hh, for every (sequence, step) row r. */
    for (size_t r = 0; r < rows; r++)
      for (size_t j = 0; j < G; j++) gx[r * G + j] = d->b_ih[j] + d->b_hh[j];
    dx_cpu_sgemm(0, 1, (int)rows, (int)G, in_dim, 1.0f, x, in_dim, d->w_ih, in_dim, 1.0f, gx, (int)G);
    memset(h, 0, (size_t)n_seq * H * sizeof *h);
    memset(c, 0, (size_t)n_seq * H * sizeof *c);
    for (int s = 0; s < steps; s++) {
      const int t = dir ? steps - 1 - s : s;
      for (int n = 0; n < n_seq; n++) memcpy(g + (size_t)n * G, gx + ((size_t)n * steps + t) * G, G * sizeof *g);
      if (s > 0)
        dx_cpu_sgemm(0, 1, n_seq, (int)G, hidden, 1.0f, h, hidden, d->w_hh, hidden, 1.0f, g, (int)G);
      for (int n = 0; n < n_seq; n++) {
        const float *gn = g + (size_t)n * G;
        float *hn = h + (size_t)n * H, *cn = c + (size_t)n * H;
        float *yn = y + ((size_t)n * steps + t) * 2 * H + (size_t)dir * H;
        for (size_t j = 0; j < H; j++) {
          const float ig = sigmoidf_(gn[j]), fg = sigmoidf_(gn[H + j]);
          const float gg = tanhf(gn[2 * H + j]), og = sigmoidf_(gn[3 * H + j]);
          cn[j] = fg * cn[j] + ig * gg;
          hn[j] = og * tanhf(cn[j]);
          yn[j] = hn[j];
        }
      }
    }
  }
  free(gx), free(g), free(h), free(c);
  return DX_OK;
}

dx_status dx_cpu_nn_frames_unfold(dx_backend *be, const float *x, float *f, int batch, int channels, int length,
                                  int width, int stride, int nframes) {
  (void)be;
  if (batch <= 0 || channels <= 0 || length <= 0 || width <= 0 || stride <= 0 || nframes <= 0) return DX_ERR_INVALID;
  const size_t C = (size_t)channels;
  for (int b = 0; b < batch; b++) {
    const float *xb = x + (size_t)b * C * length;
    for (int k = 0; k < nframes; k++) {
      float *fk = f + ((size_t)b * nframes + k) * (size_t)width * C;
      for (int j = 0; j < width; j++) {
        const long t = (long)k * stride + j;
        float *row = fk + (size_t)j * C;
        if (t < length)
          for (size_t ch = 0; ch < C; ch++) row[ch] = xb[ch * length + t];
        else
          memset(row, 0, C * sizeof *row);
      }
    }
  }
  return DX_OK;
}

dx_status dx_cpu_nn_frames_fold_add(dx_backend *be, const float *f, float *y, int batch, int channels, int length,
                                    int width, int stride, int nframes, int limit) {
  (void)be;
  if (batch <= 0 || channels <= 0 || length <= 0 || width <= 0 || stride <= 0 || nframes <= 0 || limit < 0 ||
      2 * limit >= width)
    return DX_ERR_INVALID;
  const size_t C = (size_t)channels;
  for (int b = 0; b < batch; b++) {
    float *yb = y + (size_t)b * C * length;
    for (int k = 0; k < nframes; k++) {
      const float *fk = f + ((size_t)b * nframes + k) * (size_t)width * C;
      const int j0 = k == 0 ? 0 : limit, j1 = k == nframes - 1 ? width : width - limit;
      for (int j = j0; j < j1; j++) {
        const long t = (long)k * stride + j;
        if (t >= length) break;
        const float *row = fk + (size_t)j * C;
        for (size_t ch = 0; ch < C; ch++) yb[ch * length + t] += row[ch];
      }
    }
  }
  return DX_OK;
}
