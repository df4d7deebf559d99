/* nn_cuda.h: the CUDA entry points of the nn ops (kernels/cuda/nn_*.cu) that
 * the table in nn_ops.cu points to. Each one's contract is the matching
 * dx_nn_ops member's (dx_nn_ops.h); all queue work on the backend's stream.
 * Also two helpers the ops share (row bias add, row softmax). */
#ifndef NN_CUDA_H
#define NN_CUDA_H

#include <math.h>

#include "dx_cuda.h"

extern "C" {
#include "dx_nn_ops.h"

/* nn_conv.cu */
dx_status dx_cuda_nn_conv1d(dx_backend *be, const float *x, const float *w, const float *bias, float *y, int batch,
                            int cin, int lin, int cout, int k, int stride, int pad, int dil);
dx_status dx_cuda_nn_conv_tr1d(dx_backend *be, const float *x, const float *w, const float *bias, float *y,
                               int batch, int cin, int lin, int cout, int k, int stride, int crop, int lout);
dx_status dx_cuda_nn_conv2d(dx_backend *be, const float *x, const float *w, const float *bias, float *y, int batch,
                            int cin, int h, int wd, int cout, int kh, int kw, int sh, int sw, int ph, int pw);
dx_status dx_cuda_nn_conv_tr2d(dx_backend *be, const float *x, const float *w, const float *bias, float *y,
                               int batch, int cin, int h, int wd, int cout, int kh, int kw, int sh, int sw,
                               int crop_h, int crop_w, int hout, int wout);
/* nn_gemm.cu */
dx_status dx_cuda_nn_gemm(dx_backend *be, int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                          int lda, long long stride_a, const float *b, int ldb, long long stride_b, float beta,
                          float *c, int ldc, long long stride_c, int batch);
dx_status dx_cuda_nn_linear(dx_backend *be, const float *x, const float *w, const float *bias, float *y, int rows,
                            int in, int out);
/* y[r][j] += bias[j] for r < rows, j < cols (row stride ld). */
dx_status dx_cuda_bias_rows(dx_backend *be, float *y, const float *bias, long long rows, int cols, long long ld);
/* nn_attention.cu */
dx_status dx_cuda_nn_attention(dx_backend *be, const float *q, int ldq, const float *k, int ldk, const float *v,
                               int ldv, float *out, int ldo, int lq, int lk, int heads, int dh, float scale);
dx_status dx_cuda_nn_softmax(dx_backend *be, float *x, int rows, int cols);
/* nn_norm.cu */
dx_status dx_cuda_nn_group_norm(dx_backend *be, const float *x, float *y, int batch, int channels, int len,
                                int groups, const float *gamma, const float *beta, float eps, int channels_last);
dx_status dx_cuda_nn_layer_norm(dx_backend *be, const float *x, float *y, int rows, int dim, const float *gamma,
                                const float *beta, float eps);
dx_status dx_cuda_nn_mean_std(dx_backend *be, const float *x, float *stats, int batch, long long n);
dx_status dx_cuda_nn_standardize(dx_backend *be, const float *x, float *y, const float *stats, int batch,
                                 long long n, float eps);
dx_status dx_cuda_nn_destandardize(dx_backend *be, const float *x, float *y, const float *stats, int batch,
                                   long long n);
/* nn_eltwise.cu */
dx_status dx_cuda_nn_gelu(dx_backend *be, const float *x, float *y, long long n);
dx_status dx_cuda_nn_sigmoid(dx_backend *be, const float *x, float *y, long long n);
dx_status dx_cuda_nn_glu(dx_backend *be, const float *x, float *y, int outer, int c, long long inner);
dx_status dx_cuda_nn_add(dx_backend *be, const float *a, const float *b, float *y, long long n);
dx_status dx_cuda_nn_scale_shift(dx_backend *be, const float *x, float *y, long long n, float alpha, float beta);
dx_status dx_cuda_nn_channel_affine(dx_backend *be, const float *x, float *y, int outer, int c, long long inner,
                                    const float *scale, const float *bias);
dx_status dx_cuda_nn_add_scaled(dx_backend *be, const float *x, float *y, int outer, int c, long long inner,
                                const float *scale);
/* nn_move.cu */
dx_status dx_cuda_nn_permute(dx_backend *be, const float *x, float *y, int ndim, const int *shape, const int *perm);
dx_status dx_cuda_nn_pad1d(dx_backend *be, const float *x, float *y, int rows, int lin, int left, int right,
                           dx_pad_mode mode);
dx_status dx_cuda_nn_copy2d(dx_backend *be, const float *x, long long ldx, float *y, long long ldy, int rows,
                            long long cols);
dx_status dx_cuda_nn_frames_unfold(dx_backend *be, const float *x, float *f, int batch, int channels, int len,
                                   int width, int stride, int nframes);
dx_status dx_cuda_nn_frames_fold_add(dx_backend *be, const float *f, float *y, int batch, int channels, int len,
                                     int width, int stride, int nframes, int limit);
/* nn_spectral.cu */
dx_status dx_cuda_nn_stft(dx_backend *be, const float *x, float *y, int batch, long long len, int nfft, int hop,
                          int frame0, int frames, int bins);
dx_status dx_cuda_nn_istft(dx_backend *be, const float *z, float *y, int batch, int nfft, int hop, int bins,
                           int frames, int frame0, int frames_total, long long out0, long long out_len);
/* nn_lstm.cu */
dx_status dx_cuda_nn_lstm_bidir(dx_backend *be, const float *x, float *y, int n_seq, int steps, int in_dim,
                                int hidden, const dx_lstm_dir *fwd, const dx_lstm_dir *rev);
/* nn_local_attn.cu */
dx_status dx_cuda_nn_local_attn(dx_backend *be, const float *x, float *y, int batch, int channels, int len,
                                int heads, int ndecay, const dx_local_attn_w *w);
/* nn_resample.cu */
dx_status dx_cuda_nn_resample(dx_backend *be, const float *x, float *y, int rows, int len, int old_sr, int new_sr);
}

/* Block-wide reductions for kernels of up to 1024 threads (blockDim.x a
 * multiple of 32). Every thread of the block must call them; all get the
 * result. `sh` is __shared__ scratch of 32 floats, reused after a barrier. */
static __device__ __forceinline__ float dx_warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
static __device__ __forceinline__ float dx_warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
static __device__ __forceinline__ float dx_block_sum(float v, float *sh) {
  const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
  v = dx_warp_sum(v);
  __syncthreads(); /* sh may still be read by a previous reduction */
  if (lane == 0) sh[wid] = v;
  __syncthreads();
  v = lane < nw ? sh[lane] : 0.0f;
  return dx_warp_sum(v);
}
static __device__ __forceinline__ float dx_block_max(float v, float *sh) {
  const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
  v = dx_warp_max(v);
  __syncthreads();
  if (lane == 0) sh[wid] = v;
  __syncthreads();
  v = lane < nw ? sh[lane] : -INFINITY;
  return dx_warp_max(v);
}
static __device__ __forceinline__ double dx_block_sum_d(double v, double *sh) {
  const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  __syncthreads();
  if (lane == 0) sh[wid] = v;
  __syncthreads();
  v = lane < nw ? sh[lane] : 0.0;
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
/* Softmax of row[0..n) in place by the whole block, given each thread's
 * maximum m over the elements it visits (j = threadIdx.x + k*blockDim.x). */
static __device__ __forceinline__ void dx_block_softmax(float *row, int n, float m, float *sh) {
  m = dx_block_max(m, sh);
  float s = 0.0f;
  for (int j = threadIdx.x; j < n; j += blockDim.x) {
    const float e = expf(row[j] - m);
    row[j] = e;
    s += e;
  }
  s = dx_block_sum(s, sh);
  const float inv = 1.0f / s;
  for (int j = threadIdx.x; j < n; j += blockDim.x) row[j] *= inv;
}

#endif
