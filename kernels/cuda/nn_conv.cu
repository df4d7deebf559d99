/* nn_conv.cu: conv1d, conv2d and their transposes on cuDNN.
 *
 * conv1d is a 2-D convolution of height 1. A transposed convolution is
 * cudnnConvolutionBackwardData of the forward convolution whose filter has
 * the ConvTranspose layout [Cin][Cout][kh][kw]; it writes the full output
 * ((H-1)*sh + kh) x ((W-1)*sw + kw), then a crop kernel copies the window
 * the caller asked for and adds the bias (directly into y when nothing is
 * cropped).
 *
 * Descriptors and the chosen algorithm are cached per shape in the
 * backend's context (an open-addressing table, cleared when it fills).
 * Exact float32 by default: CUDNN_FMA_MATH (no TF32) and the GEMM-family
 * algorithms (ALGO_1, then ALGO_0 for backward data), so results equal the
 * CPU reference up to summation order; only when cuDNN offers none of those
 * for a shape another float32 algorithm (FFT, Winograd: errors near 1e-6)
 * is taken rather than failing. DEMIX_CUDA_TF32=1 allows any algorithm and
 * TF32 tensor cores.
 *
 * Threading: one backend per thread (the cache lives in its context). */
#include <stdlib.h>
#include <string.h>

#include "nn_cuda.h"

#define CONV_SLOTS 512
#define CONV_KEY 15
#define CONV_WS_CAP ((size_t)1 << 30)

enum { OP_FWD = 1, OP_BWD_DATA = 2 };

typedef struct {
  int used;
  int key[CONV_KEY];
  cudnnTensorDescriptor_t xd, yd; /* FWD: input, output. BWD_DATA: input (dy), full output (dx) */
  cudnnFilterDescriptor_t wd;
  cudnnConvolutionDescriptor_t cd;
  int algo;
  size_t ws;
} conv_entry;

struct dx_cuda_conv_cache {
  conv_entry e[CONV_SLOTS];
  int n;
};

static void entry_destroy(conv_entry *e) {
  if (e->xd) cudnnDestroyTensorDescriptor(e->xd);
  if (e->yd) cudnnDestroyTensorDescriptor(e->yd);
  if (e->wd) cudnnDestroyFilterDescriptor(e->wd);
  if (e->cd) cudnnDestroyConvolutionDescriptor(e->cd);
  memset(e, 0, sizeof *e);
}

extern "C" void dx_cuda_conv_cache_free(dx_cuda_ctx *c) {
  if (!c->conv_cache) return;
  for (int i = 0; i < CONV_SLOTS; i++)
    if (c->conv_cache->e[i].used) entry_destroy(&c->conv_cache->e[i]);
  free(c->conv_cache);
  c->conv_cache = NULL;
}

static unsigned key_hash(const int *k) {
  unsigned h = 2166136261u;
  for (int i = 0; i < CONV_KEY; i++) {
    h ^= (unsigned)k[i];
    h *= 16777619u;
  }
  return h;
}

static int fwd_algo_exact(cudnnConvolutionFwdAlgo_t a) {
  return a == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM || a == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM ||
         a == CUDNN_CONVOLUTION_FWD_ALGO_GEMM;
}

static int tensor_math(cudnnMathType_t m) {
  return m == CUDNN_TENSOR_OP_MATH || m == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;
}

/* Fill a new entry: descriptors, algorithm, workspace size. */
static dx_status entry_setup(dx_cuda_ctx *c, conv_entry *e) {
  const int *k = e->key;
  const int op = k[0], n = k[1], ci = k[2], h = k[3], w = k[4], co = k[5], kh = k[6], kw = k[7], sh = k[8],
            sw = k[9], ph = k[10], pw = k[11], dh = k[12], dw = k[13];
  DX_CUDNN_CHECK(cudnnCreateTensorDescriptor(&e->xd));
  DX_CUDNN_CHECK(cudnnCreateTensorDescriptor(&e->yd));
  DX_CUDNN_CHECK(cudnnCreateFilterDescriptor(&e->wd));
  DX_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&e->cd));
  DX_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(e->cd, ph, pw, sh, sw, dh, dw, CUDNN_CROSS_CORRELATION,
                                                 CUDNN_DATA_FLOAT));
  DX_CUDNN_CHECK(cudnnSetConvolutionMathType(e->cd, c->tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH));
  DX_CUDNN_CHECK(cudnnSetTensor4dDescriptor(e->xd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, n, ci, h, w));
  if (op == OP_FWD) {
    DX_CUDNN_CHECK(cudnnSetFilter4dDescriptor(e->wd, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, co, ci, kh, kw));
    int on, oc, oh, ow;
    DX_CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(e->cd, e->xd, e->wd, &on, &oc, &oh, &ow));
    DX_CUDNN_CHECK(cudnnSetTensor4dDescriptor(e->yd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, on, oc, oh, ow));
    cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    int got = 0;
    DX_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(c->cudnn, e->xd, e->wd, e->cd, e->yd,
                                                          CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &got, perf));
    /* Exact mode: a GEMM-family algorithm; failing that (no such engine for
     * this shape) any other float32 one without tensor-core math. */
    e->algo = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM;
    int found = 0;
    for (int pass = 0; pass < 2 && !found; pass++)
      for (int i = 0; i < got; i++) {
        if (perf[i].status != CUDNN_STATUS_SUCCESS || perf[i].memory > CONV_WS_CAP) continue;
        if (!c->tf32 && (tensor_math(perf[i].mathType) || (pass == 0 && !fwd_algo_exact(perf[i].algo)))) continue;
        e->algo = perf[i].algo;
        if (c->tf32) DX_CUDNN_CHECK(cudnnSetConvolutionMathType(e->cd, perf[i].mathType));
        found = 1;
        break;
      }
    DX_CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(c->cudnn, e->xd, e->wd, e->cd, e->yd,
                                                           (cudnnConvolutionFwdAlgo_t)e->algo, &e->ws));
  } else {
    /* The forward convolution maps full [n][co][hf][wf] -> x [n][ci][h][w] with filter [ci][co][kh][kw]. */
    DX_CUDNN_CHECK(cudnnSetFilter4dDescriptor(e->wd, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, ci, co, kh, kw));
    const int hf = (h - 1) * sh + kh, wf = (w - 1) * sw + kw;
    DX_CUDNN_CHECK(cudnnSetTensor4dDescriptor(e->yd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, n, co, hf, wf));
    cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    int got = 0;
    DX_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(c->cudnn, e->wd, e->xd, e->cd, e->yd,
                                                               CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &got, perf));
    /* Exact mode: the deterministic ALGO_1 when offered, else ALGO_0 (atomics,
     * same arithmetic), else any other float32 one without tensor-core math. */
    e->algo = CUDNN_CONVOLUTION_BWD_DATA_ALGO_1;
    int found = 0;
    for (int pass = 0; pass < 3 && !found; pass++)
      for (int i = 0; i < got; i++) {
        if (perf[i].status != CUDNN_STATUS_SUCCESS || perf[i].memory > CONV_WS_CAP) continue;
        if (!c->tf32) {
          if (tensor_math(perf[i].mathType)) continue;
          if (pass == 0 && perf[i].algo != CUDNN_CONVOLUTION_BWD_DATA_ALGO_1) continue;
          if (pass == 1 && perf[i].algo != CUDNN_CONVOLUTION_BWD_DATA_ALGO_0) continue;
        }
        e->algo = perf[i].algo;
        if (c->tf32) DX_CUDNN_CHECK(cudnnSetConvolutionMathType(e->cd, perf[i].mathType));
        found = 1;
        break;
      }
    DX_CUDNN_CHECK(cudnnGetConvolutionBackwardDataWorkspaceSize(c->cudnn, e->wd, e->xd, e->cd, e->yd,
                                                                (cudnnConvolutionBwdDataAlgo_t)e->algo, &e->ws));
  }
  return DX_OK;
}

/* The cached entry for a key (created on first use). */
static dx_status conv_lookup(dx_cuda_ctx *c, const int *key, conv_entry **out) {
  if (!c->conv_cache) {
    c->conv_cache = (dx_cuda_conv_cache *)calloc(1, sizeof *c->conv_cache);
    if (!c->conv_cache) return DX_ERR_NOMEM;
  }
  dx_cuda_conv_cache *cc = c->conv_cache;
  unsigned i = key_hash(key) % CONV_SLOTS;
  for (int probe = 0; probe < CONV_SLOTS; probe++, i = (i + 1) % CONV_SLOTS) {
    conv_entry *e = &cc->e[i];
    if (!e->used) break;
    if (!memcmp(e->key, key, sizeof e->key)) {
      *out = e;
      return DX_OK;
    }
  }
  if (cc->n >= CONV_SLOTS * 3 / 4) { /* full enough: start over */
    for (int j = 0; j < CONV_SLOTS; j++)
      if (cc->e[j].used) entry_destroy(&cc->e[j]);
    cc->n = 0;
  }
  i = key_hash(key) % CONV_SLOTS;
  while (cc->e[i].used) i = (i + 1) % CONV_SLOTS;
  conv_entry *e = &cc->e[i];
  memset(e, 0, sizeof *e);
  memcpy(e->key, key, sizeof e->key);
  dx_status st = entry_setup(c, e);
  if (st != DX_OK) {
    entry_destroy(e);
    return st;
  }
  e->used = 1;
  cc->n++;
  *out = e;
  return DX_OK;
}

/* y[b][c][i] += bias[c] over [outer][c][inner]. */
__global__ void conv_bias_kernel(float *y, const float *bias, int c, long long inner, long long total) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total; i += (long long)gridDim.x * blockDim.x)
    y[i] += bias[(i / inner) % c];
}

/* y[b][c][i][j] = full[b][c][i+ch][j+cw] (+ bias[c]). */
__global__ void conv_crop_kernel(const float *full, float *y, const float *bias, int c, int hf, int wf, int ch,
                                 int cw, int ho, int wo, long long total) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
       i += (long long)gridDim.x * blockDim.x) {
    const int j = (int)(i % wo);
    const long long r = i / wo;
    const int row = (int)(r % ho);
    const long long bc = r / ho;
    float v = full[(bc * hf + row + ch) * (long long)wf + j + cw];
    if (bias) v += bias[bc % c];
    y[i] = v;
  }
}

static dx_status add_bias(dx_backend *be, float *y, const float *bias, long long outer, int c, long long inner) {
  if (!bias) return DX_OK;
  const long long total = outer * c * inner;
  conv_bias_kernel<<<dx_cuda_grid(total, 256), 256, 0, dx_cuda_stream(be)>>>(y, bias, c, inner, total);
  DX_CUDA_LAUNCH_CHECK();
  return DX_OK;
}

static dx_status conv_fwd(dx_backend *be, const float *x, const float *w, const float *bias, float *y, int n, int ci,
                          int h, int wd, int co, int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw) {
  const long long ho = ((long long)h + 2LL * ph - (long long)dh * (kh - 1) - 1) / sh + 1;
  const long long wo = ((long long)wd + 2LL * pw - (long long)dw * (kw - 1) - 1) / sw + 1;
  if (n <= 0 || ci <= 0 || h <= 0 || wd <= 0 || co <= 0 || kh <= 0 || kw <= 0 || sh <= 0 || sw <= 0 || ph < 0 ||
      pw < 0 || dh <= 0 || dw <= 0 || (long long)h + 2LL * ph - (long long)dh * (kh - 1) - 1 < 0 ||
      (long long)wd + 2LL * pw - (long long)dw * (kw - 1) - 1 < 0 || ho < 1 || wo < 1)
    return DX_ERR_INVALID;
  dx_cuda_ctx *c = dx_cuda_ctx_of(be);
  const int key[CONV_KEY] = {OP_FWD, n, ci, h, wd, co, kh, kw, sh, sw, ph, pw, dh, dw, c->tf32};
  conv_entry *e;
  DX_CU_TRY(conv_lookup(c, key, &e));
  void *ws = NULL;
  if (e->ws) DX_CU_TRY(dx_cuda_workspace(be, e->ws, &ws));
  const float one = 1.0f, zero = 0.0f;
  DX_CUDNN_CHECK(cudnnConvolutionForward(c->cudnn, &one, e->xd, x, e->wd, w, e->cd,
                                         (cudnnConvolutionFwdAlgo_t)e->algo, ws, e->ws, &zero, e->yd, y));
  return add_bias(be, y, bias, n, co, ho * wo);
}

static dx_status conv_tr(dx_backend *be, const float *x, const float *w, const float *bias, float *y, int n, int ci,
                         int h, int wd, int co, int kh, int kw, int sh, int sw, int crop_h, int crop_w, int ho,
                         int wo) {
  if (n <= 0 || ci <= 0 || h <= 0 || wd <= 0 || co <= 0 || kh <= 0 || kw <= 0 || sh <= 0 || sw <= 0 || crop_h < 0 ||
      crop_w < 0 || ho < 1 || wo < 1)
    return DX_ERR_INVALID;
  const long long hf = (long long)(h - 1) * sh + kh, wf = (long long)(wd - 1) * sw + kw;
  if (hf > 0x7fffffff || wf > 0x7fffffff || crop_h + (long long)ho > hf || crop_w + (long long)wo > wf)
    return DX_ERR_INVALID;
  dx_cuda_ctx *c = dx_cuda_ctx_of(be);
  const int key[CONV_KEY] = {OP_BWD_DATA, n, ci, h, wd, co, kh, kw, sh, sw, 0, 0, 1, 1, c->tf32};
  conv_entry *e;
  DX_CU_TRY(conv_lookup(c, key, &e));
  const int direct = crop_h == 0 && crop_w == 0 && ho == hf && wo == wf;
  float *full = y;
  if (!direct) DX_CU_TRY(dx_cuda_alloc(be, (size_t)n * co * hf * wf * sizeof(float), (void **)&full));
  dx_status st = DX_OK;
  void *ws = NULL;
  if (e->ws) st = dx_cuda_workspace(be, e->ws, &ws);
  if (st == DX_OK) {
    const float one = 1.0f, zero = 0.0f;
    cudnnStatus_t cs = cudnnConvolutionBackwardData(c->cudnn, &one, e->wd, w, e->xd, x, e->cd,
                                                    (cudnnConvolutionBwdDataAlgo_t)e->algo, ws, e->ws, &zero,
                                                    e->yd, full);
    if (cs != CUDNN_STATUS_SUCCESS)
      st = dx_cuda_report(DX_ERR_CUDNN, "cudnnConvolutionBackwardData", cudnnGetErrorString(cs), __FILE__, __LINE__);
  }
  if (st == DX_OK) {
    if (direct) {
      st = add_bias(be, y, bias, n, co, hf * wf);
    } else {
      const long long total = (long long)n * co * ho * wo;
      conv_crop_kernel<<<dx_cuda_grid(total, 256), 256, 0, dx_cuda_stream(be)>>>(full, y, bias, co, (int)hf, (int)wf,
                                                                                 crop_h, crop_w, ho, wo, total);
      cudaError_t ce = cudaGetLastError();
      if (ce != cudaSuccess)
        st = dx_cuda_report(DX_ERR_CUDA, "conv_crop_kernel", cudaGetErrorString(ce), __FILE__, __LINE__);
    }
  }
  if (!direct) dx_cuda_free(be, full);
  return st;
}

extern "C" dx_status dx_cuda_nn_conv1d(dx_backend *be, const float *x, const float *w, const float *bias, float *y,
                                       int batch, int cin, int lin, int cout, int k, int stride, int pad, int dil) {
  return conv_fwd(be, x, w, bias, y, batch, cin, 1, lin, cout, 1, k, 1, stride, 0, pad, 1, dil);
}

extern "C" dx_status dx_cuda_nn_conv_tr1d(dx_backend *be, const float *x, const float *w, const float *bias,
                                          float *y, int batch, int cin, int lin, int cout, int k, int stride, int crop,
                                          int lout) {
  return conv_tr(be, x, w, bias, y, batch, cin, 1, lin, cout, 1, k, 1, stride, 0, crop, 1, lout);
}

extern "C" dx_status dx_cuda_nn_conv2d(dx_backend *be, const float *x, const float *w, const float *bias, float *y,
                                       int batch, int cin, int h, int wd, int cout, int kh, int kw, int sh, int sw,
                                       int ph, int pw) {
  return conv_fwd(be, x, w, bias, y, batch, cin, h, wd, cout, kh, kw, sh, sw, ph, pw, 1, 1);
}

extern "C" dx_status dx_cuda_nn_conv_tr2d(dx_backend *be, const float *x, const float *w, const float *bias,
                                          float *y, int batch, int cin, int h, int wd, int cout, int kh, int kw,
                                          int sh, int sw, int crop_h, int crop_w, int hout, int wout) {
  return conv_tr(be, x, w, bias, y, batch, cin, h, wd, cout, kh, kw, sh, sw, crop_h, crop_w, hout, wout);
}
