/* nn_local_attn.cu: LocalState attention of the Demucs v3 DConv branches
 * (see kernels/cpu/nn_local_attn.c for the formulas). For the whole batch
 * at once: the 1x1 convolutions are strided-batched GEMMs (weights with
 * batch stride 0) plus a bias kernel; the decay rates per (batch, head,
 * query) come from one kernel; then queries are taken in blocks: one
 * batched GEMM over (batch, head) for the scores, a kernel that applies the
 * decay penalty and the self mask (-100) and takes the softmax over keys,
 * and one batched GEMM for the weighted contents. The output projection
 * then goes through a GEMM and y = x + proj(r).
 *
 * Threading: one backend per thread; scratch from its allocator. */
#include "nn_cuda.h"

#define LA_SCRATCH_FLOATS ((long long)1 << 26)

/* out[b][cout][T] = w[cout][cin] @ x[b][cin][T] + bias[cout]. */
static dx_status conv1x1(dx_backend *be, const float *w, const float *bias, const float *x, float *out, int batch,
                         int cout, int cin, int T) {
  DX_CU_TRY(dx_cuda_nn_gemm(be, 0, 0, cout, T, cin, 1.0f, w, cin, 0, x, T, (long long)cin * T, 0.0f, out, T,
                            (long long)cout * T, batch));
  if (bias) DX_CU_TRY(dx_cuda_nn_channel_affine(be, out, out, batch, cout, T, NULL, bias));
  return DX_OK;
}

/* rate[b][h][s] = sum_f (f+1)/sqrt(K) * sigmoid(a[b][h*K + f][s]) / 2. */
__global__ void la_rate_kernel(const float *a, float *rate, int heads, int ndecay, int T, long long total) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
       i += (long long)gridDim.x * blockDim.x) {
    const long long s = i % T, bh = i / T;
    const long long b = bh / heads, h = bh % heads;
    const float sk = sqrtf((float)ndecay);
    float acc = 0.0f;
    for (int f = 0; f < ndecay; f++) {
      const float v = a[((b * heads + h) * ndecay + f) * T + s];
      acc += (float)(f + 1) / sk * ((1.0f / (1.0f + expf(-v))) * 0.5f);
    }
    rate[i] = acc;
  }
}

/* Row (bh, si) of dots[BH][ns][T], query s = s0 + si: decay penalty, self
 * mask, softmax over keys t. One block per row. */
__global__ void la_softmax_kernel(float *dots, const float *rate, int T, int ns, int s0) {
  __shared__ float sh[32];
  const long long row_id = blockIdx.x;
  const long long bh = row_id / ns;
  const int s = s0 + (int)(row_id % ns);
  float *row = dots + row_id * T;
  const float rs = rate ? rate[bh * T + s] : 0.0f;
  float m = -INFINITY;
  for (int t = threadIdx.x; t < T; t += blockDim.x) {
    const float v = t == s ? -100.0f : row[t] - (float)abs(t - s) * rs;
    row[t] = v;
    m = fmaxf(m, v);
  }
  dx_block_softmax(row, T, m, sh);
}

static dx_status local_attn_run(dx_backend *be, const float *x, float *y, int B, int C, int T, int H, int K,
                                const dx_local_attn_w *w, float *q, float *k, float *v, float *r, float *a,
                                float *rate, float *dots, int block) {
  const int D = C / H, KD = H * K;
  const long long BH = (long long)B * H, DT = (long long)D * T;
  cudaStream_t st = dx_cuda_stream(be);
  DX_CU_TRY(conv1x1(be, w->query_w, w->query_b, x, q, B, C, C, T));
  DX_CU_TRY(conv1x1(be, w->key_w, w->key_b, x, k, B, C, C, T));
  DX_CU_TRY(conv1x1(be, w->content_w, w->content_b, x, v, B, C, C, T));
  if (K) {
    DX_CU_TRY(conv1x1(be, w->decay_w, w->decay_b, x, a, B, KD, C, T));
    la_rate_kernel<<<dx_cuda_grid(BH * T, 256), 256, 0, st>>>(a, rate, H, K, T, BH * T);
    DX_CUDA_LAUNCH_CHECK();
  }
  const float scale = 1.0f / sqrtf((float)D);
  const int threads = T >= 1024 ? 256 : T >= 128 ? 128 : 32;
  for (int s0 = 0; s0 < T; s0 += block) {
    const int ns = T - s0 < block ? T - s0 : block;
    /* dots[bh][si][t] = scale * sum_d q[bh][d][s0+si] k[bh][d][t] */
    DX_CU_TRY(dx_cuda_nn_gemm(be, 1, 0, ns, T, D, scale, q + s0, T, DT, k, T, DT, 0.0f, dots, T, (long long)ns * T,
                              (int)BH));
    la_softmax_kernel<<<(unsigned)(BH * ns), threads, 0, st>>>(dots, K ? rate : NULL, T, ns, s0);
    DX_CUDA_LAUNCH_CHECK();
    /* r[bh][d][s0+si] = sum_t v[bh][d][t] dots[bh][si][t] */
    DX_CU_TRY(dx_cuda_nn_gemm(be, 0, 1, D, ns, T, 1.0f, v, T, DT, dots, T, (long long)ns * T, 0.0f, r + s0, T, DT,
                              (int)BH));
  }
  /* y = x + proj(r) (q is free again) */
  DX_CU_TRY(conv1x1(be, w->proj_w, w->proj_b, r, q, B, C, C, T));
  return dx_cuda_nn_add(be, x, q, y, (long long)B * C * T);
}

extern "C" dx_status dx_cuda_nn_local_attn(dx_backend *be, const float *x, float *y, int batch, int channels, int len,
                                           int heads, int ndecay, const dx_local_attn_w *w) {
  if (batch <= 0 || channels <= 0 || len <= 0 || heads <= 0 || channels % heads || ndecay < 0 || !w)
    return DX_ERR_INVALID;
  if (ndecay && (!w->decay_w)) return DX_ERR_INVALID;
  const long long BCT = (long long)batch * channels * len, BH = (long long)batch * heads;
  if (BH * len > 0x7fffffffLL) return DX_ERR_INVALID;
  long long block = LA_SCRATCH_FLOATS / (BH * len);
  if (block < 1) block = 1;
  if (block > len) block = len;
  const long long n_a = ndecay ? (long long)batch * heads * ndecay * len : 0, n_rate = ndecay ? BH * len : 0;
  const long long n_dots = BH * block * len;
  float *buf = NULL;
  DX_CU_TRY(dx_cuda_alloc(be, (size_t)(4 * BCT + n_a + n_rate + n_dots) * sizeof(float), (void **)&buf));
  float *q = buf, *k = q + BCT, *v = k + BCT, *r = v + BCT, *a = r + BCT, *rate = a + n_a, *dots = rate + n_rate;
  dx_status st = local_attn_run(be, x, y, batch, channels, len, heads, ndecay, w, q, k, v, r, a, rate, dots, (int)block);
  dx_cuda_free(be, buf);
  return st;
}
