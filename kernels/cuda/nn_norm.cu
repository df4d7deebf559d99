/* nn_norm.cu: GroupNorm, LayerNorm and the mean/std standardisation ops.
 *
 * Statistics are exact two-pass ones (mean, then the sum of squared
 * deviations) accumulated in double: a segment (one GroupNorm group of one
 * batch item, or one mean_std row) is split into chunks, one block per
 * (segment, chunk) writes a partial sum, and a small kernel adds the
 * partials of each segment in a fixed order, so results are deterministic.
 * LayerNorm rows are short: one block per row.
 *
 * Threading: one backend per thread; scratch comes from its allocator. */
#include "nn_cuda.h"

#define NORM_THREADS 256

/* Element e of segment s: contiguous segments of seglen, or one GroupNorm
 * group in channels-last layout [B][L][C] (cpg channels per group). */
typedef struct {
  int channels_last;
  long long seglen;
  int groups, cpg, channels;
  long long len;
} seg_map;

static __device__ __forceinline__ long long seg_offset(const seg_map &m, long long s, long long e) {
  if (!m.channels_last) return s * m.seglen + e;
  const long long b = s / m.groups, g = s % m.groups;
  const long long l = e / m.cpg, j = e % m.cpg;
  return (b * m.len + l) * m.channels + g * m.cpg + j;
}

/* partial[s*chunks + ch] = sum over the chunk of x (mean == NULL) or of (x - mean[s])^2. */
__global__ void seg_partial_kernel(const float *x, seg_map m, int chunks, long long per, const double *mean,
                                   double *partial) {
  __shared__ double sh[32];
  const long long s = blockIdx.x / chunks, ch = blockIdx.x % chunks;
  const long long e0 = ch * per, e1 = e0 + per < m.seglen ? e0 + per : m.seglen;
  const double mu = mean ? mean[s] : 0.0;
  double acc = 0.0;
  for (long long e = e0 + threadIdx.x; e < e1; e += blockDim.x) {
    const double v = (double)x[seg_offset(m, s, e)];
    acc += mean ? (v - mu) * (v - mu) : v;
  }
  acc = dx_block_sum_d(acc, sh);
  if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

/* out[s] = sum_ch partial[s][ch] / div. */
__global__ void seg_finish_kernel(const double *partial, int nseg, int chunks, double div, double *out) {
  const int s = blockIdx.x * blockDim.x + threadIdx.x;
  if (s >= nseg) return;
  double acc = 0.0;
  for (int c = 0; c < chunks; c++) acc += partial[(long long)s * chunks + c];
  out[s] = acc / div;
}

/* mean[s] and var[s] (divided by seglen - unbiased) into scratch `st` ([2][nseg] doubles after the partials). */
static dx_status seg_stats(dx_backend *be, const float *x, const seg_map &m, int nseg, int unbiased, double **mean,
                           double **var, double **scratch) {
  long long chunks = (m.seglen + 8191) / 8192;
  if (chunks > 512) chunks = 512;
  if (chunks < 1) chunks = 1;
  const long long per = (m.seglen + chunks - 1) / chunks;
  const long long nblocks = (long long)nseg * chunks;
  if (nblocks > 0x7fffffffLL) return DX_ERR_INVALID;
  double *buf = NULL;
  DX_CU_TRY(dx_cuda_alloc(be, (size_t)(nblocks + 2LL * nseg) * sizeof(double), (void **)&buf));
  *scratch = buf;
  double *partial = buf, *mu = buf + nblocks, *va = mu + nseg;
  cudaStream_t s = dx_cuda_stream(be);
  const unsigned fin_blocks = (unsigned)((nseg + 127) / 128);
  seg_partial_kernel<<<(unsigned)nblocks, NORM_THREADS, 0, s>>>(x, m, (int)chunks, per, NULL, partial);
  DX_CUDA_LAUNCH_CHECK();
  seg_finish_kernel<<<fin_blocks, 128, 0, s>>>(partial, nseg, (int)chunks, (double)m.seglen, mu);
  DX_CUDA_LAUNCH_CHECK();
  seg_partial_kernel<<<(unsigned)nblocks, NORM_THREADS, 0, s>>>(x, m, (int)chunks, per, mu, partial);
  DX_CUDA_LAUNCH_CHECK();
  const double div = unbiased ? (m.seglen > 1 ? (double)(m.seglen - 1) : 1.0) : (double)m.seglen;
  seg_finish_kernel<<<fin_blocks, 128, 0, s>>>(partial, nseg, (int)chunks, div, va);
  DX_CUDA_LAUNCH_CHECK();
  *mean = mu;
  *var = va;
  return DX_OK;
}

/* coef[s] = {(float)mean[s], (float)(1 / sqrt(var[s] + eps))}: the per-group
 * factors, computed once per group rather than per element. */
__global__ void group_norm_coef_kernel(const double *mean, const double *var, int nseg, float eps, float2 *coef) {
  const int s = blockIdx.x * blockDim.x + threadIdx.x;
  if (s >= nseg) return;
  coef[s] = make_float2((float)mean[s], (float)(1.0 / sqrt(var[s] + (double)eps)));
}

__global__ void group_norm_apply_kernel(const float *x, float *y, long long total, int channels, long long len,
                                        int groups, int cpg, int channels_last, const float2 *coef,
                                        const float *gamma, const float *beta) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
       i += (long long)gridDim.x * blockDim.x) {
    const int ch = channels_last ? (int)(i % channels) : (int)((i / len) % channels);
    const long long b = i / ((long long)channels * len);
    const float2 k = coef[b * groups + ch / cpg];
    float v = (x[i] - k.x) * k.y;
    if (gamma) v *= gamma[ch];
    if (beta) v += beta[ch];
    y[i] = v;
  }
}

extern "C" dx_status dx_cuda_nn_group_norm(dx_backend *be, const float *x, float *y, int batch, int channels, int len,
                                           int groups, const float *gamma, const float *beta, float eps,
                                           int channels_last) {
  if (batch <= 0 || channels <= 0 || len <= 0 || groups <= 0 || channels % groups) return DX_ERR_INVALID;
  const int cpg = channels / groups;
  const long long nseg = (long long)batch * groups;
  if (nseg > 0x7fffffffLL) return DX_ERR_INVALID;
  seg_map m = {channels_last ? 1 : 0, (long long)cpg * len, groups, cpg, channels, (long long)len};
  double *mean, *var, *scratch = NULL;
  dx_status st = seg_stats(be, x, m, (int)nseg, 0, &mean, &var, &scratch);
  if (st == DX_OK) {
    cudaStream_t s = dx_cuda_stream(be);
    /* The partial sums at the start of the scratch (at least nseg doubles)
     * are spent once the variance is queued: the factors go there. */
    float2 *coef = (float2 *)scratch;
    group_norm_coef_kernel<<<(unsigned)((nseg + 127) / 128), 128, 0, s>>>(mean, var, (int)nseg, eps, coef);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) st = dx_cuda_report(DX_ERR_CUDA, "group_norm_coef_kernel", cudaGetErrorString(e), __FILE__, __LINE__);
    const long long total = (long long)batch * channels * len;
    if (st == DX_OK) {
      group_norm_apply_kernel<<<dx_cuda_grid(total, 256), 256, 0, s>>>(x, y, total, channels, len, groups, cpg,
                                                                       channels_last ? 1 : 0, coef, gamma, beta);
      e = cudaGetLastError();
      if (e != cudaSuccess) st = dx_cuda_report(DX_ERR_CUDA, "group_norm_apply_kernel", cudaGetErrorString(e), __FILE__, __LINE__);
    }
  }
  dx_cuda_free(be, scratch);
  return st;
}

/* One block per row: two passes in double, then the affine output. */
__global__ void layer_norm_kernel(const float *x, float *y, int dim, const float *gamma, const float *beta,
                                  float eps) {
  __shared__ double sh[32];
  const float *xr = x + (long long)blockIdx.x * dim;
  float *yr = y + (long long)blockIdx.x * dim;
  double acc = 0.0;
  for (int j = threadIdx.x; j < dim; j += blockDim.x) acc += xr[j];
  const double mu = dx_block_sum_d(acc, sh) / dim;
  acc = 0.0;
  for (int j = threadIdx.x; j < dim; j += blockDim.x) {
    const double d = (double)xr[j] - mu;
    acc += d * d;
  }
  const double var = dx_block_sum_d(acc, sh) / dim;
  const float rstd = (float)(1.0 / sqrt(var + (double)eps)), muf = (float)mu;
  for (int j = threadIdx.x; j < dim; j += blockDim.x) {
    float v = (xr[j] - muf) * rstd;
    if (gamma) v *= gamma[j];
    if (beta) v += beta[j];
    yr[j] = v;
  }
}

extern "C" dx_status dx_cuda_nn_layer_norm(dx_backend *be, const float *x, float *y, int rows, int dim,
                                           const float *gamma, const float *beta, float eps) {
  if (rows <= 0 || dim <= 0) return DX_ERR_INVALID;
  const int threads = dim >= 512 ? 256 : dim >= 128 ? 128 : 32;
  layer_norm_kernel<<<(unsigned)rows, threads, 0, dx_cuda_stream(be)>>>(x, y, dim, gamma, beta, eps);
  DX_CUDA_LAUNCH_CHECK();
  return DX_OK;
}

__global__ void mean_std_store_kernel(const double *mean, const double *var, float *stats, int batch) {
  const int b = blockIdx.x * blockDim.x + threadIdx.x;
  if (b >= batch) return;
  stats[2 * b] = (float)mean[b];
  stats[2 * b + 1] = (float)sqrt(var[b]);
}

extern "C" dx_status dx_cuda_nn_mean_std(dx_backend *be, const float *x, float *stats, int batch, long long n) {
  if (batch <= 0 || n <= 1) return DX_ERR_INVALID;
  seg_map m = {0, n, 1, 1, 1, 1};
  double *mean, *var, *scratch = NULL;
  dx_status st = seg_stats(be, x, m, batch, 1, &mean, &var, &scratch);
  if (st == DX_OK) {
    mean_std_store_kernel<<<(unsigned)((batch + 127) / 128), 128, 0, dx_cuda_stream(be)>>>(mean, var, stats, batch);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) st = dx_cuda_report(DX_ERR_CUDA, "mean_std_store_kernel", cudaGetErrorString(e), __FILE__, __LINE__);
  }
  dx_cuda_free(be, scratch);
  return st;
}

__global__ void standardize_kernel(const float *x, float *y, const float *stats, long long n, long long total,
                                   float eps, int inverse) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
       i += (long long)gridDim.x * blockDim.x) {
    const long long b = i / n;
    const float mu = stats[2 * b], sd = stats[2 * b + 1];
    y[i] = inverse ? x[i] * sd + mu : (x[i] - mu) / (eps + sd);
  }
}

extern "C" dx_status dx_cuda_nn_standardize(dx_backend *be, const float *x, float *y, const float *stats, int batch,
                                            long long n, float eps) {
  if (batch <= 0 || n <= 0) return DX_ERR_INVALID;
  const long long total = (long long)batch * n;
  standardize_kernel<<<dx_cuda_grid(total, 256), 256, 0, dx_cuda_stream(be)>>>(x, y, stats, n, total, eps, 0);
  DX_CUDA_LAUNCH_CHECK();
  return DX_OK;
}

extern "C" dx_status dx_cuda_nn_destandardize(dx_backend *be, const float *x, float *y, const float *stats, int batch,
                                              long long n) {
  if (batch <= 0 || n <= 0) return DX_ERR_INVALID;
  const long long total = (long long)batch * n;
  standardize_kernel<<<dx_cuda_grid(total, 256), 256, 0, dx_cuda_stream(be)>>>(x, y, stats, n, total, 0.0f, 1);
  DX_CUDA_LAUNCH_CHECK();
  return DX_OK;
}
