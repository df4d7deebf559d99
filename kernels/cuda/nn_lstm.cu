/* nn_lstm.cu: one bidirectional nn.LSTM layer (gate order i, f, g, o, both
 * biases, zero initial state), computed like the CPU reference: per
 * direction, the input projections of every (sequence, step) row are one
 * GEMM into gx (pre-filled with b_ih + b_hh); then per step one GEMM adds
 * h @ w_hh^T to that step's rows of gx in place (row stride steps*4H picks
 * the step out of every sequence), and a gate kernel updates c and h and
 * writes the output channels of its direction.
 *
 * Threading: one backend per thread; scratch from its allocator. */
#include "nn_cuda.h"

/* gx[r][j] = b_ih[j] + b_hh[j]. */
__global__ void lstm_bias_kernel(float *gx, const float *b_ih, const float *b_hh, int g4, long long total) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
       i += (long long)gridDim.x * blockDim.x) {
    const int j = (int)(i % g4);
    gx[i] = (b_ih ? b_ih[j] : 0.0f) + (b_hh ? b_hh[j] : 0.0f);
  }
}

static __device__ __forceinline__ float sigm(float x) { return 1.0f / (1.0f + expf(-x)); }

/* Step t of every sequence n: gates from gx[(n*steps + t)][4H]. */
__global__ void lstm_gate_kernel(const float *gx, float *h, float *c, float *y, int n_seq, int steps, int hidden, int t,
                                 int dir) {
  const long long total = (long long)n_seq * hidden;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
       i += (long long)gridDim.x * blockDim.x) {
    const long long n = i / hidden;
    const int j = (int)(i % hidden);
    const float *g = gx + (n * steps + t) * 4LL * hidden;
    const float ig = sigm(g[j]), fg = sigm(g[hidden + j]);
    const float gg = tanhf(g[2 * hidden + j]), og = sigm(g[3 * hidden + j]);
    const float cn = fg * c[i] + ig * gg;
    const float hn = og * tanhf(cn);
    c[i] = cn;
    h[i] = hn;
    y[(n * steps + t) * 2LL * hidden + (long long)dir * hidden + j] = hn;
  }
}

static dx_status lstm_dir(dx_backend *be, const float *x, float *y, int n_seq, int steps, int in_dim, int hidden,
                          const dx_lstm_dir *d, int dir, float *gx, float *h, float *c) {
  cudaStream_t s = dx_cuda_stream(be);
  const long long rows = (long long)n_seq * steps, g4 = 4LL * hidden;
  lstm_bias_kernel<<<dx_cuda_grid(rows * g4, 256), 256, 0, s>>>(gx, d->b_ih, d->b_hh, (int)g4, rows * g4);
  DX_CUDA_LAUNCH_CHECK();
  /* gx += x @ w_ih^T */
  DX_CU_TRY(dx_cuda_nn_gemm(be, 0, 1, (int)rows, (int)g4, in_dim, 1.0f, x, in_dim, 0, d->w_ih, in_dim, 0, 1.0f, gx,
                            (int)g4, 0, 1));
  DX_CUDA_CHECK(cudaMemsetAsync(c, 0, (size_t)n_seq * hidden * sizeof(float), s));
  DX_CUDA_CHECK(cudaMemsetAsync(h, 0, (size_t)n_seq * hidden * sizeof(float), s));
  const unsigned grid = dx_cuda_grid((long long)n_seq * hidden, 256);
  for (int step = 0; step < steps; step++) {
    const int t = dir ? steps - 1 - step : step;
    if (step > 0) /* gx[n][t] += h[n] @ w_hh^T for every sequence n */
      DX_CU_TRY(dx_cuda_nn_gemm(be, 0, 1, n_seq, (int)g4, hidden, 1.0f, h, hidden, 0, d->w_hh, hidden, 0, 1.0f,
                                gx + (long long)t * g4, (int)((long long)steps * g4), 0, 1));
    lstm_gate_kernel<<<grid, 256, 0, s>>>(gx, h, c, y, n_seq, steps, hidden, t, dir);
    DX_CUDA_LAUNCH_CHECK();
  }
  return DX_OK;
}

extern "C" dx_status dx_cuda_nn_lstm_bidir(dx_backend *be, const float *x, float *y, int n_seq, int steps, int in_dim,
                                           int hidden, const dx_lstm_dir *fwd, const dx_lstm_dir *rev) {
  if (n_seq <= 0 || steps <= 0 || in_dim <= 0 || hidden <= 0 || !fwd || !rev) return DX_ERR_INVALID;
  const long long rows = (long long)n_seq * steps, g4 = 4LL * hidden;
  if (rows > 0x7fffffffLL || (long long)steps * g4 > 0x7fffffffLL) return DX_ERR_INVALID;
  float *gx = NULL, *hc = NULL;
  dx_status st = dx_cuda_alloc(be, (size_t)(rows * g4) * sizeof(float), (void **)&gx);
  if (st == DX_OK) st = dx_cuda_alloc(be, 2 * (size_t)n_seq * hidden * sizeof(float), (void **)&hc);
  for (int dir = 0; dir < 2 && st == DX_OK; dir++)
    st = lstm_dir(be, x, y, n_seq, steps, in_dim, hidden, dir ? rev : fwd, dir, gx, hc, hc + (size_t)n_seq * hidden);
  dx_cuda_free(be, gx);
  dx_cuda_free(be, hc);
  return st;
}
