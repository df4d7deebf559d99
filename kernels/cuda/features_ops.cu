/* features_ops.cu: the CUDA backend's feature plan, STFT (cuFFT), GEMM
 * (cuBLAS, exact float32 math) and the generic element-wise and reduction
 * ops of dx_feature_ops.h; the per-frame feature kernels are in
 * features_frames.cu. Every op equals the CPU reference
 * (kernels/cpu/features_ops.c), whose conventions (librosa 0.11) it
 * mirrors; sums run in double as there.
 *
 * Memory: the plan owns the window, the filterbank matrices and the batched
 * frame and spectrum buffers for max_frames frames, made once in
 * plan_create. These and the reductions' few-byte scratch come from the
 * backend's caching allocator (dx_cuda_alloc), so a warm worker calls no
 * cudaMalloc. Only the reductions (col_max, moments) copy results back
 * and wait for the stream.
 * Threading: a plan belongs to one worker and runs on its backend's stream
 * (kernels, cuFFT through cufftSetStream, cuBLAS through the backend's
 * handle, copies). */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dx_cuda.h"
#include "features_cuda.h"

extern "C" {
#include "dx_feature_ops.h"
}

#define TPB 256

static void cu_plan_destroy(dx_feat_plan *plan) {
  if (!plan) return;
  dx_backend *be = plan->be;
  dx_cuda_feat_priv *pv = (dx_cuda_feat_priv *)plan->priv;
  /* The buffers go back to the allocator, which hands a block out again
   * only to later work on the same stream; the FFT plan's own tables are
   * released at once, so queued transforms finish first. */
  if (pv) {
    if (pv->fft_ok) {
      cudaStreamSynchronize(pv->stream);
      cufftDestroy(pv->fft);
    }
    dx_cuda_free(be, pv->frames);
    dx_cuda_free(be, pv->spec);
    dx_cuda_free(be, pv->window);
    dx_cuda_free(be, pv->freq);
    free(pv);
  }
  dx_cuda_free(be, (void *)plan->mel_fb);
  dx_cuda_free(be, (void *)plan->chroma_fb);
  dx_cuda_free(be, (void *)plan->dct);
  free(plan);
}

/* Device copy of a host table (queued on the stream; the caller syncs
 * before freeing host). *dev is set only on success. */
static dx_status upload_table(dx_backend *be, const void *host, size_t bytes, void **dev) {
  void *d = NULL;
  DX_CU_TRY(dx_cuda_alloc(be, bytes, &d));
  cudaError_t e = cudaMemcpyAsync(d, host, bytes, cudaMemcpyHostToDevice, dx_cuda_stream(be));
  if (e != cudaSuccess) {
    dx_cuda_free(be, d);
    return dx_cuda_report(DX_ERR_CUDA, "cudaMemcpyAsync(table)", cudaGetErrorString(e), __FILE__, __LINE__);
  }
  *dev = d;
  return DX_OK;
}

/* The batched real-to-complex FFT of max_frames frames of n_fft, packed
 * (input frames n_fft apart, spectra n_bins apart), on the backend's
 * stream. When cuFFT cannot get its work area, the allocator's cached
 * blocks are released and planning is tried once more. */
static dx_status make_fft(dx_backend *be, dx_cuda_feat_priv *pv, int nf, int nb, int mf) {
  for (int attempt = 0;; attempt++) {
    DX_CUFFT_CHECK(cufftCreate(&pv->fft));
    pv->fft_ok = 1;
    int n[1] = {nf};
    size_t work = 0;
    cufftResult r = cufftMakePlanMany(pv->fft, 1, n, n, 1, nf, n, 1, nb, CUFFT_R2C, mf, &work);
    if (r == CUFFT_SUCCESS) break;
    cufftDestroy(pv->fft);
    pv->fft_ok = 0;
    if (r != CUFFT_ALLOC_FAILED || attempt)
      return dx_cuda_report(DX_ERR_CUFFT, "cufftMakePlanMany", "cufft failure", __FILE__, __LINE__);
    dx_cuda_cache_trim(be);
  }
  DX_CUFFT_CHECK(cufftSetStream(pv->fft, pv->stream));
  return DX_OK;
}

static dx_status make_plan(dx_backend *be, dx_feat_plan *plan) {
  dx_cuda_ctx *c = dx_cuda_ctx_of(be);
  dx_cuda_feat_priv *pv = (dx_cuda_feat_priv *)plan->priv;
  const dx_feat_params *p = &plan->p;
  int nb = plan->n_bins, nf = p->n_fft, mf = plan->max_frames;
  DX_CUDA_CHECK(cudaSetDevice(c->device));
  DX_CU_TRY(make_fft(be, pv, nf, nb, mf));
  /* frames past a call's n_frames are transformed too (the plan's batch is
   * max_frames) and their spectra ignored: zero them once so they are
   * always finite */
  DX_CU_TRY(dx_cuda_alloc(be, (size_t)mf * nf * sizeof(float), (void **)&pv->frames));
  DX_CUDA_CHECK(cudaMemsetAsync(pv->frames, 0, (size_t)mf * nf * sizeof(float), c->stream));
  DX_CU_TRY(dx_cuda_alloc(be, (size_t)mf * nb * sizeof(cufftComplex), (void **)&pv->spec));

  /* constant tables, computed on the host exactly as the CPU backend does */
  size_t mel_n = (size_t)p->n_mels * nb, chroma_n = (size_t)p->n_chroma * nb, dct_n = (size_t)p->n_mfcc * p->n_mels;
  float *h = (float *)malloc((mel_n + chroma_n + dct_n + nf) * sizeof(float));
  double *hf = (double *)malloc((size_t)nb * sizeof(double));
  if (!h || !hf) {
    free(h);
    free(hf);
    return DX_ERR_NOMEM;
  }
  dx_feat_mel_filterbank(p, h);
  dx_feat_chroma_filterbank(p, h + mel_n);
  dx_feat_dct_matrix(p, h + mel_n + chroma_n);
  dx_feat_hann(nf, h + mel_n + chroma_n + dct_n);
  /* fft_frequencies: bin k is k * sr / n_fft Hz (as the CPU's freq) */
  for (int k = 0; k < nb; k++) hf[k] = (double)p->sample_rate * k / nf;
  void *d = NULL;
  dx_status st = upload_table(be, h, mel_n * sizeof(float), &d);
  if (st == DX_OK) {
    plan->mel_fb = (const float *)d;
    st = upload_table(be, h + mel_n, chroma_n * sizeof(float), &d);
  }
  if (st == DX_OK) {
    plan->chroma_fb = (const float *)d;
    st = upload_table(be, h + mel_n + chroma_n, dct_n * sizeof(float), &d);
  }
  if (st == DX_OK) {
    plan->dct = (const float *)d;
    st = upload_table(be, h + mel_n + chroma_n + dct_n, nf * sizeof(float), &d);
  }
  if (st == DX_OK) {
    pv->window = (float *)d;
    st = upload_table(be, hf, (size_t)nb * sizeof(double), &d);
  }
  if (st == DX_OK) pv->freq = (double *)d;
  /* the host tables are freed next: wait for the copies (also after a
   * failure, as earlier copies may still be queued) */
  cudaError_t e = cudaStreamSynchronize(c->stream);
  if (st == DX_OK && e != cudaSuccess)
    st = dx_cuda_report(DX_ERR_CUDA, "cudaStreamSynchronize", cudaGetErrorString(e), __FILE__, __LINE__);
  free(h);
  free(hf);
  if (st != DX_OK) return st;
  pv->bands.n = dx_feat_contrast_bands(p, pv->bands.lo, pv->bands.cnt, pv->bands.q);
  return DX_OK;
}

static dx_status cu_plan_create(dx_backend *be, const dx_feat_params *p, int max_frames, dx_feat_plan **out,
                                dx_errbuf *err) {
  *out = NULL;
  dx_feat_plan *plan;
  dx_status st = dx_feat_plan_new(be, p, max_frames, sizeof(dx_cuda_feat_priv), &plan, err);
  if (st != DX_OK) return st;
  dx_cuda_feat_priv *pv = (dx_cuda_feat_priv *)plan->priv;
  pv->stream = dx_cuda_stream(be);
  st = make_plan(be, plan);
  if (st != DX_OK) {
    cu_plan_destroy(plan);
    return dx_fail(err, st, "cannot make the CUDA feature plan");
  }
  *out = plan;
  return DX_OK;
}

/* Centred, zero-padded frames times the periodic Hann window (librosa >= 0.10). */
__global__ void k_frames(const float *y, long long y0, long long n, long long frame0, int n_frames, int nf, int hop,
                         const float *w, float *frames) {
  long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= (long long)n_frames * nf) return;
  int f = (int)(i / nf), j = (int)(i % nf);
  long long idx = (frame0 + f) * hop - nf / 2 + j;
  frames[i] = (idx >= 0 && idx < n) ? y[idx - y0] * w[j] : 0.0f;
}

__global__ void k_power(const cufftComplex *spec, int n_frames, int nb, float *out, int ld) {
  long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= (long long)n_frames * nb) return;
  int f = (int)(i / nb), k = (int)(i % nb);
  cufftComplex v = spec[i];
  out[(size_t)f * ld + k] = v.x * v.x + v.y * v.y;
}

static unsigned blocks_for(long long n) { return (unsigned)((n + TPB - 1) / TPB); }

static dx_status cu_stft_power(dx_feat_plan *plan, const float *y, size_t y0, size_t n, size_t frame0, int n_frames,
                               float *out, int ld) {
  dx_cuda_feat_priv *pv = (dx_cuda_feat_priv *)plan->priv;
  int nf = plan->p.n_fft, nb = plan->n_bins;
  size_t lo, hi;
  dx_feat_frames_span(n, nf, plan->p.hop, frame0, n_frames, &lo, &hi);
  if (n_frames < 0 || n_frames > plan->max_frames || ld < nb || y0 > lo) return DX_ERR_INVALID;
  if (!n_frames) return DX_OK;
  long long tot = (long long)n_frames * nf;
  k_frames<<<blocks_for(tot), TPB, 0, pv->stream>>>(y, (long long)y0, (long long)n, (long long)frame0, n_frames, nf,
                                                    plan->p.hop, pv->window, pv->frames);
  DX_CUDA_CHECK(cudaGetLastError());
  /* the plan is batched for max_frames: frames past n_frames hold old data
   * and their spectra are not read */
  DX_CUFFT_CHECK(cufftExecR2C(pv->fft, pv->frames, pv->spec));
  k_power<<<blocks_for((long long)n_frames * nb), TPB, 0, pv->stream>>>(pv->spec, n_frames, nb, out, ld);
  DX_CUDA_CHECK(cudaGetLastError());
  return DX_OK;
}

/* C = A B^T in row-major terms is C^T = B A^T in cuBLAS's column-major
 * terms: op(B) = T on the row-major B, op(A) = N on the row-major A.
 * Always plain float32 arithmetic (compute type 32F_PEDANTIC), also when
 * the backend's handle allows TF32 for the separation models
 * (DEMIX_CUDA_TF32=1): the features must equal the CPU's. */
static dx_status cu_gemm_nt(dx_backend *be, int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                            float *C, int ldc) {
  if (M < 0 || N < 0 || K < 0) return DX_ERR_INVALID;
  if (!M || !N) return DX_OK;
  const float one = 1.0f, zero = 0.0f;
  DX_CUBLAS_CHECK(cublasGemmEx(dx_cuda_ctx_of(be)->cublas, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &one, B, CUDA_R_32F, ldb,
                               A, CUDA_R_32F, lda, &zero, C, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F_PEDANTIC,
                               CUBLAS_GEMM_DEFAULT));
  return DX_OK;
}

static dx_status cu_mel_power(dx_feat_plan *plan, const float *power, int ld_pow, int n_frames, float *out,
                              int ld_out) {
  if (ld_pow < plan->n_bins || ld_out < plan->p.n_mels || n_frames < 0) return DX_ERR_INVALID;
  return cu_gemm_nt(plan->be, n_frames, plan->p.n_mels, plan->n_bins, power, ld_pow, plan->mel_fb, plan->n_bins, out,
                    ld_out);
}

__global__ void k_rows_normalize_max(float *x, int n_rows, int ld, int n_cols) {
  int r = blockIdx.x * blockDim.x + threadIdx.x;
  if (r >= n_rows) return;
  float *row = x + (size_t)r * ld, m = 0;
  for (int c = 0; c < n_cols; c++) m = fmaxf(m, fabsf(row[c]));
  if (m < FLT_MIN) return;
  for (int c = 0; c < n_cols; c++) row[c] /= m;
}

static dx_status cu_rows_normalize_max(dx_backend *be, float *x, int n_rows, int ld, int n_cols) {
  if (n_rows <= 0) return DX_OK;
  k_rows_normalize_max<<<blocks_for(n_rows), TPB, 0, dx_cuda_ctx_of(be)->stream>>>(x, n_rows, ld, n_cols);
  DX_CUDA_CHECK(cudaGetLastError());
  return DX_OK;
}

/* Block maxima of a strided column range, then one block over the maxima. */
__global__ void k_max_partial(const float *x, int n_rows, int ld, int col0, int n_cols, float *part) {
  __shared__ float sm[TPB];
  long long total = (long long)n_rows * n_cols;
  float m = -INFINITY;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (long long)gridDim.x * blockDim.x)
    m = fmaxf(m, x[(i / n_cols) * ld + col0 + i % n_cols]);
  sm[threadIdx.x] = m;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if ((int)threadIdx.x < s) sm[threadIdx.x] = fmaxf(sm[threadIdx.x], sm[threadIdx.x + s]);
    __syncthreads();
  }
  if (threadIdx.x == 0) part[blockIdx.x] = sm[0];
}

static dx_status cu_col_max(dx_backend *be, const float *x, int n_rows, int ld, int col0, int n_cols,
                            float *out_host) {
  dx_cuda_ctx *c = dx_cuda_ctx_of(be);
  float *part = NULL;
  const int nblk = 128;
  if (n_rows <= 0 || n_cols <= 0) {
    *out_host = -INFINITY;
    return DX_OK;
  }
  /* the partial maxima; the one block of the second pass reads them all
   * before its thread 0 writes part[0] */
  DX_CU_TRY(dx_cuda_alloc(be, nblk * sizeof(float), (void **)&part));
  k_max_partial<<<nblk, TPB, 0, c->stream>>>(x, n_rows, ld, col0, n_cols, part);
  k_max_partial<<<1, TPB, 0, c->stream>>>(part, nblk, 1, 0, 1, part);
  cudaError_t e = cudaGetLastError();
  if (e == cudaSuccess) e = cudaMemcpyAsync(out_host, part, sizeof(float), cudaMemcpyDeviceToHost, c->stream);
  if (e == cudaSuccess) e = cudaStreamSynchronize(c->stream);
  dx_cuda_free(be, part);
  if (e != cudaSuccess) return dx_cuda_report(DX_ERR_CUDA, "col_max", cudaGetErrorString(e), __FILE__, __LINE__);
  return DX_OK;
}

__global__ void k_power_to_db(float *x, int n_rows, int ld, int col0, int n_cols, float amin, float floor_db) {
  long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= (long long)n_rows * n_cols) return;
  float *v = x + (i / n_cols) * ld + col0 + i % n_cols;
  *v = fmaxf(10.0f * log10f(fmaxf(amin, *v)), floor_db);
}

static dx_status cu_power_to_db(dx_backend *be, float *x, int n_rows, int ld, int col0, int n_cols, float amin,
                                float top_db, float max_value) {
  if (n_rows <= 0 || n_cols <= 0) return DX_OK;
  float floor_db = top_db > 0 ? 10.0f * log10f(fmaxf(amin, max_value)) - top_db : -INFINITY;
  k_power_to_db<<<blocks_for((long long)n_rows * n_cols), TPB, 0, dx_cuda_ctx_of(be)->stream>>>(x, n_rows, ld, col0,
                                                                                               n_cols, amin, floor_db);
  DX_CUDA_CHECK(cudaGetLastError());
  return DX_OK;
}

__global__ void k_cols_sub(float *x, int n_rows, int ld, int dst, int a, int b, int n_cols) {
  long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= (long long)n_rows * n_cols) return;
  float *row = x + (i / n_cols) * ld;
  int c = (int)(i % n_cols);
  row[dst + c] = row[a + c] - row[b + c];
}

static dx_status cu_cols_sub(dx_backend *be, float *x, int n_rows, int ld, int dst, int a, int b, int n_cols) {
  if (n_rows <= 0 || n_cols <= 0) return DX_OK;
  k_cols_sub<<<blocks_for((long long)n_rows * n_cols), TPB, 0, dx_cuda_ctx_of(be)->stream>>>(x, n_rows, ld, dst, a, b,
                                                                                            n_cols);
  DX_CUDA_CHECK(cudaGetLastError());
  return DX_OK;
}

/* One thread per output frame, the bands summed in order in double, as the CPU does. */
__global__ void k_onset_flux(const float *S, int n_frames, int ld, int n_mels, int shift, float *env) {
  int t = blockIdx.x * blockDim.x + threadIdx.x;
  if (t < n_frames) env[t] = dx_feat_onset_flux_frame(S, n_frames, ld, n_mels, shift, t);
}

static dx_status cu_onset_flux(dx_feat_plan *plan, const float *S, int n_frames, int ld, int n_mels, float *env) {
  if (n_frames <= 0) return DX_OK;
  dx_cuda_feat_priv *pv = (dx_cuda_feat_priv *)plan->priv;
  int shift = 1 + plan->p.n_fft / (2 * plan->p.hop);
  k_onset_flux<<<blocks_for(n_frames), TPB, 0, pv->stream>>>(S, n_frames, ld, n_mels, shift, env);
  DX_CUDA_CHECK(cudaGetLastError());
  return DX_OK;
}

/* One block per column: the mean, then the mean squared deviation, in double. */
__global__ void k_moments(const float *x, int n_rows, int ld, int col0, double *out) {
  __shared__ double sm[TPB];
  int c = blockIdx.x;
  double s = 0;
  for (int r = threadIdx.x; r < n_rows; r += blockDim.x) s += x[(size_t)r * ld + col0 + c];
  sm[threadIdx.x] = s;
  __syncthreads();
  for (int k = blockDim.x / 2; k > 0; k >>= 1) {
    if ((int)threadIdx.x < k) sm[threadIdx.x] += sm[threadIdx.x + k];
    __syncthreads();
  }
  double mean = n_rows ? sm[0] / n_rows : 0;
  __syncthreads();
  double v = 0;
  for (int r = threadIdx.x; r < n_rows; r += blockDim.x) {
    double d = x[(size_t)r * ld + col0 + c] - mean;
    v += d * d;
  }
  sm[threadIdx.x] = v;
  __syncthreads();
  for (int k = blockDim.x / 2; k > 0; k >>= 1) {
    if ((int)threadIdx.x < k) sm[threadIdx.x] += sm[threadIdx.x + k];
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    out[2 * c] = mean;
    out[2 * c + 1] = n_rows ? sqrt(sm[0] / n_rows) : 0;
  }
}

static dx_status cu_moments(dx_backend *be, const float *x, int n_rows, int ld, int col0, int n_cols,
                            double *mean_host, double *std_host) {
  dx_cuda_ctx *c = dx_cuda_ctx_of(be);
  if (n_cols <= 0) return DX_OK;
  double *d = NULL;
  double *h = (double *)malloc(2 * (size_t)n_cols * sizeof(double));
  if (!h) return DX_ERR_NOMEM;
  dx_status st = dx_cuda_alloc(be, 2 * (size_t)n_cols * sizeof(double), (void **)&d);
  if (st != DX_OK) {
    free(h);
    return st;
  }
  k_moments<<<n_cols, TPB, 0, c->stream>>>(x, n_rows, ld, col0, d);
  cudaError_t e = cudaGetLastError();
  if (e == cudaSuccess) e = cudaMemcpyAsync(h, d, 2 * (size_t)n_cols * sizeof(double), cudaMemcpyDeviceToHost, c->stream);
  if (e == cudaSuccess) e = cudaStreamSynchronize(c->stream);
  dx_cuda_free(be, d);
  if (e == cudaSuccess)
    for (int i = 0; i < n_cols; i++) {
      mean_host[i] = h[2 * i];
      if (std_host) std_host[i] = h[2 * i + 1];
    }
  free(h);
  if (e != cudaSuccess) return dx_cuda_report(DX_ERR_CUDA, "moments", cudaGetErrorString(e), __FILE__, __LINE__);
  return DX_OK;
}

extern "C" const dx_feature_ops dx_cuda_feature_ops = {
    "cuda",
    cu_plan_create,
    cu_plan_destroy,
    cu_stft_power,
    dx_cuda_spectral_frames,
    dx_cuda_signal_frames,
    cu_gemm_nt,
    cu_mel_power,
    cu_rows_normalize_max,
    cu_col_max,
    cu_power_to_db,
    cu_cols_sub,
    cu_onset_flux,
    cu_moments,
    dx_cuda_chroma_power,
};
