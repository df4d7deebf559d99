/* emu_libs.cpp: the CUDA emulator's cuFFT (on FFTW), cuBLAS (on OpenBLAS)
 * and cuDNN convolutions (direct loops in double), with the argument and
 * range checks of the real libraries: every operand must lie inside one
 * device allocation, leading dimensions must fit, descriptors must agree.
 * These compute the documented functions; they cannot tell whether the real
 * libraries read their arguments the same way, which only the GPU tier can. */
#include <cblas.h>
#include <fftw3.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include <type_traits>

#include "cublas_v2.h"
#include "cudnn.h"
#include "cufft.h"

extern "C" {
#include "dx_fftw_lock.h"
}

using dx_emu::device_range;
using dx_emu::is_device;

namespace {
/* Device work on this thread for the scope of a library call. */
struct device_scope {
  device_scope() { dx_emu::device_enter(); }
  ~device_scope() { dx_emu::device_leave(); }
};

bool operand(const char *call, const char *name, const void *p, size_t bytes) {
  if (!bytes) return true;
  if (device_range(p, bytes)) return true;
  fprintf(stderr, "CUDA emulator: %s: %s (%p, %zu bytes) is not inside one device allocation\n", call, name, p, bytes);
  return false;
}
bool host_scalar(const char *call, const char *name, const void *p) {
  if (p && !is_device(p)) return true;
  fprintf(stderr, "CUDA emulator: %s: %s must point to host memory (pointer mode host)\n", call, name);
  return false;
}
} // namespace

/* ================= cuFFT ================= */

namespace {
struct fft_plan {
  bool used, made;
  int n, batch;
  cufftType type;
  int istride, idist, ostride, odist;
  void *work; /* device memory a real plan would hold */
  fftwf_plan inplace, outplace;
};
#define MAX_FFT_PLANS 4096
fft_plan g_fft[MAX_FFT_PLANS];
pthread_mutex_t g_fft_lock = PTHREAD_MUTEX_INITIALIZER;

fft_plan *fft_get(cufftHandle h) {
  if (h < 1 || h > MAX_FFT_PLANS || !g_fft[h - 1].used) return NULL;
  return &g_fft[h - 1];
}
} // namespace

cufftResult cufftCreate(cufftHandle *plan) {
  if (!plan) return CUFFT_INVALID_VALUE;
  pthread_mutex_lock(&g_fft_lock);
  for (int i = 0; i < MAX_FFT_PLANS; i++)
    if (!g_fft[i].used) {
      memset(&g_fft[i], 0, sizeof g_fft[i]);
      g_fft[i].used = true;
      *plan = i + 1;
      pthread_mutex_unlock(&g_fft_lock);
      return CUFFT_SUCCESS;
    }
  pthread_mutex_unlock(&g_fft_lock);
  return CUFFT_ALLOC_FAILED;
}

cufftResult cufftMakePlanMany(cufftHandle plan, int rank, int *n, int *inembed, int istride, int idist, int *onembed,
                              int ostride, int odist, cufftType type, int batch, size_t *work_size) {
  fft_plan *p = fft_get(plan);
  if (!p || p->made) return CUFFT_INVALID_PLAN;
  if (rank != 1) {
    fprintf(stderr, "CUDA emulator: cufftMakePlanMany: rank %d (only rank 1 is emulated)\n", rank);
    return CUFFT_INVALID_VALUE;
  }
  if (!n || n[0] < 1 || batch < 1) return CUFFT_INVALID_SIZE;
  if (type != CUFFT_R2C && type != CUFFT_C2R) return CUFFT_INVALID_TYPE;
  const int nc = n[0] / 2 + 1;
  if ((inembed == NULL) != (onembed == NULL)) return CUFFT_INVALID_VALUE;
  if (!inembed) { /* basic layout: strides and distances are ignored */
    istride = ostride = 1;
    idist = type == CUFFT_R2C ? n[0] : nc;
    odist = type == CUFFT_R2C ? nc : n[0];
  } else if (istride < 1 || ostride < 1 || idist < 1 || odist < 1) {
    return CUFFT_INVALID_VALUE;
  }
  p->n = n[0];
  p->batch = batch;
  p->type = type;
  p->istride = istride;
  p->idist = idist;
  p->ostride = ostride;
  p->odist = odist;
  /* A work area in device memory, as cuFFT allocates one. */
  const size_t work = (size_t)batch * nc * sizeof(cufftComplex);
  if (cudaMalloc(&p->work, work) != cudaSuccess) {
    cudaGetLastError();
    return CUFFT_ALLOC_FAILED;
  }
  if (work_size) *work_size = work;
  p->made = true;
  return CUFFT_SUCCESS;
}

cufftResult cufftSetStream(cufftHandle plan, cudaStream_t stream) {
  if (!fft_get(plan)) return CUFFT_INVALID_PLAN;
  return dx_emu::stream_valid(stream) ? CUFFT_SUCCESS : CUFFT_INVALID_VALUE;
}

static cufftResult fft_exec(cufftHandle plan, cufftType type, void *in, void *out, const char *call) {
  fft_plan *p = fft_get(plan);
  if (!p || !p->made) return CUFFT_INVALID_PLAN;
  if (p->type != type) return CUFFT_INVALID_TYPE;
  const int nc = p->n / 2 + 1;
  const int in_len = type == CUFFT_R2C ? p->n : nc, out_len = type == CUFFT_R2C ? nc : p->n;
  const size_t in_el = type == CUFFT_R2C ? sizeof(float) : sizeof(cufftComplex);
  const size_t out_el = type == CUFFT_R2C ? sizeof(cufftComplex) : sizeof(float);
  const size_t in_bytes = ((size_t)(p->batch - 1) * p->idist + (size_t)(in_len - 1) * p->istride + 1) * in_el;
  const size_t out_bytes = ((size_t)(p->batch - 1) * p->odist + (size_t)(out_len - 1) * p->ostride + 1) * out_el;
  device_scope dev;
  if (!operand(call, "input", in, in_bytes) || !operand(call, "output", out, out_bytes)) return CUFFT_EXEC_FAILED;
  const bool inplace = in == out;
  fftwf_plan &fp = inplace ? p->inplace : p->outplace;
  if (!fp) {
    dx_fftw_planner_lock();
    int nn = p->n;
    if (type == CUFFT_R2C)
      fp = fftwf_plan_many_dft_r2c(1, &nn, p->batch, (float *)in, NULL, p->istride, p->idist, (fftwf_complex *)out,
                                   NULL, p->ostride, p->odist, FFTW_ESTIMATE | FFTW_UNALIGNED);
    else
      fp = fftwf_plan_many_dft_c2r(1, &nn, p->batch, (fftwf_complex *)in, NULL, p->istride, p->idist, (float *)out,
                                   NULL, p->ostride, p->odist, FFTW_ESTIMATE | FFTW_UNALIGNED | FFTW_DESTROY_INPUT);
    dx_fftw_planner_unlock();
    if (!fp) return CUFFT_INTERNAL_ERROR;
  }
  if (type == CUFFT_R2C)
    fftwf_execute_dft_r2c(fp, (float *)in, (fftwf_complex *)out);
  else
    fftwf_execute_dft_c2r(fp, (fftwf_complex *)in, (float *)out);
  return CUFFT_SUCCESS;
}

cufftResult cufftExecR2C(cufftHandle plan, cufftReal *idata, cufftComplex *odata) {
  return fft_exec(plan, CUFFT_R2C, idata, odata, "cufftExecR2C");
}
cufftResult cufftExecC2R(cufftHandle plan, cufftComplex *idata, cufftReal *odata) {
  return fft_exec(plan, CUFFT_C2R, idata, odata, "cufftExecC2R");
}

cufftResult cufftDestroy(cufftHandle plan) {
  fft_plan *p = fft_get(plan);
  if (!p) return CUFFT_INVALID_PLAN;
  dx_fftw_planner_lock();
  if (p->inplace) fftwf_destroy_plan(p->inplace);
  if (p->outplace) fftwf_destroy_plan(p->outplace);
  dx_fftw_planner_unlock();
  cudaFree(p->work);
  pthread_mutex_lock(&g_fft_lock);
  memset(p, 0, sizeof *p);
  pthread_mutex_unlock(&g_fft_lock);
  return CUFFT_SUCCESS;
}

/* ================= cuBLAS ================= */

/* Streams only order work, and every product is float32 here (TF32 is
 * the real library's business): a handle holds nothing but its tag. */
struct dx_emu_cublas {
  int magic;
};

static bool blas_ok(cublasHandle_t h) { return h && h->magic == 0xb1a5; }

cublasStatus_t cublasCreate(cublasHandle_t *h) {
  if (!h) return CUBLAS_STATUS_INVALID_VALUE;
  *h = (cublasHandle_t)calloc(1, sizeof **h);
  if (!*h) return CUBLAS_STATUS_ALLOC_FAILED;
  (*h)->magic = 0xb1a5;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasDestroy(cublasHandle_t h) {
  if (!blas_ok(h)) return CUBLAS_STATUS_NOT_INITIALIZED;
  h->magic = 0;
  free(h);
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s) {
  if (!blas_ok(h)) return CUBLAS_STATUS_NOT_INITIALIZED;
  return dx_emu::stream_valid(s) ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_INVALID_VALUE;
}
cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t mode) {
  if (!blas_ok(h)) return CUBLAS_STATUS_NOT_INITIALIZED;
  (void)mode;
  return CUBLAS_STATUS_SUCCESS;
}
const char *cublasGetStatusString(cublasStatus_t s) {
  switch (s) {
  case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
  case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
  case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
  case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
  case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
  case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
  }
  return "unknown cuBLAS status";
}

/* Bytes a column-major rows x cols operand with leading dimension ld spans. */
static size_t span(int rows, int cols, int ld) {
  return rows && cols ? ((size_t)(cols - 1) * ld + rows) * sizeof(float) : 0;
}

static cublasStatus_t gemm_one(const char *call, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                               float alpha, const float *A, int lda, const float *B, int ldb, float beta, float *C,
                               int ldc) {
  const int ar = ta == CUBLAS_OP_N ? m : k, ac = ta == CUBLAS_OP_N ? k : m;
  const int br = tb == CUBLAS_OP_N ? k : n, bc = tb == CUBLAS_OP_N ? n : k;
  if (!operand(call, "A", A, span(ar, ac, lda)) || !operand(call, "B", B, span(br, bc, ldb)) ||
      !operand(call, "C", C, span(m, n, ldc)))
    return CUBLAS_STATUS_INVALID_VALUE;
  if (!m || !n) return CUBLAS_STATUS_SUCCESS;
  cblas_sgemm(CblasColMajor, ta == CUBLAS_OP_N ? CblasNoTrans : CblasTrans, tb == CUBLAS_OP_N ? CblasNoTrans : CblasTrans,
              m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
  return CUBLAS_STATUS_SUCCESS;
}

static cublasStatus_t gemm_check(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                                 int lda, int ldb, int ldc) {
  if (!blas_ok(h)) return CUBLAS_STATUS_NOT_INITIALIZED;
  if ((ta != CUBLAS_OP_N && ta != CUBLAS_OP_T) || (tb != CUBLAS_OP_N && tb != CUBLAS_OP_T) || m < 0 || n < 0 || k < 0)
    return CUBLAS_STATUS_INVALID_VALUE;
  const int ar = ta == CUBLAS_OP_N ? m : k, br = tb == CUBLAS_OP_N ? k : n;
  if (lda < (ar > 1 ? ar : 1) || ldb < (br > 1 ? br : 1) || ldc < (m > 1 ? m : 1)) {
    fprintf(stderr, "CUDA emulator: gemm m %d n %d k %d: lda %d, ldb %d or ldc %d too small\n", m, n, k, lda, ldb, ldc);
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSgemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                           const float *alpha, const float *A, int lda, const float *B, int ldb, const float *beta,
                           float *C, int ldc) {
  cublasStatus_t st = gemm_check(h, ta, tb, m, n, k, lda, ldb, ldc);
  if (st != CUBLAS_STATUS_SUCCESS) return st;
  if (!host_scalar("cublasSgemm", "alpha", alpha) || !host_scalar("cublasSgemm", "beta", beta))
    return CUBLAS_STATUS_INVALID_VALUE;
  device_scope dev;
  return gemm_one("cublasSgemm", ta, tb, m, n, k, *alpha, A, lda, B, ldb, *beta, C, ldc);
}

cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                                         int k, const float *alpha, const float *A, int lda, long long sa,
                                         const float *B, int ldb, long long sb, const float *beta, float *C, int ldc,
                                         long long sc, int batch) {
  cublasStatus_t st = gemm_check(h, ta, tb, m, n, k, lda, ldb, ldc);
  if (st != CUBLAS_STATUS_SUCCESS) return st;
  if (batch < 0) return CUBLAS_STATUS_INVALID_VALUE;
  if (!host_scalar("cublasSgemmStridedBatched", "alpha", alpha) || !host_scalar("cublasSgemmStridedBatched", "beta", beta))
    return CUBLAS_STATUS_INVALID_VALUE;
  device_scope dev;
  for (int b = 0; b < batch && st == CUBLAS_STATUS_SUCCESS; b++)
    st = gemm_one("cublasSgemmStridedBatched", ta, tb, m, n, k, *alpha, A + b * sa, lda, B + b * sb, ldb, *beta,
                  C + b * sc, ldc);
  return st;
}

cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                            const void *alpha, const void *A, cudaDataType at, int lda, const void *B, cudaDataType bt,
                            int ldb, const void *beta, void *C, cudaDataType ct, int ldc, cublasComputeType_t compute,
                            cublasGemmAlgo_t algo) {
  (void)algo;
  cublasStatus_t st = gemm_check(h, ta, tb, m, n, k, lda, ldb, ldc);
  if (st != CUBLAS_STATUS_SUCCESS) return st;
  if (at != CUDA_R_32F || bt != CUDA_R_32F || ct != CUDA_R_32F ||
      (compute != CUBLAS_COMPUTE_32F && compute != CUBLAS_COMPUTE_32F_PEDANTIC))
    return CUBLAS_STATUS_NOT_SUPPORTED;
  if (!host_scalar("cublasGemmEx", "alpha", alpha) || !host_scalar("cublasGemmEx", "beta", beta))
    return CUBLAS_STATUS_INVALID_VALUE;
  device_scope dev;
  return gemm_one("cublasGemmEx", ta, tb, m, n, k, *(const float *)alpha, (const float *)A, lda, (const float *)B, ldb,
                  *(const float *)beta, (float *)C, ldc);
}

/* ================= cuDNN ================= */

struct dx_emu_cudnn {
  int magic; /* all a handle holds (see dx_emu_cublas) */
};
struct dx_emu_tensor_desc {
  bool set;
  int n, c, h, w;
};
struct dx_emu_filter_desc {
  bool set;
  int k, c, h, w;
};
struct dx_emu_conv_desc {
  bool set;
  int ph, pw, u, v, dh, dw;
  cudnnConvolutionMode_t mode;
  cudnnMathType_t math;
};

static bool dnn_ok(cudnnHandle_t h) { return h && h->magic == 0xd11; }

const char *cudnnGetErrorString(cudnnStatus_t s) {
  switch (s) {
  case CUDNN_STATUS_SUCCESS: return "CUDNN_STATUS_SUCCESS";
  case CUDNN_STATUS_NOT_INITIALIZED: return "CUDNN_STATUS_NOT_INITIALIZED";
  case CUDNN_STATUS_BAD_PARAM: return "CUDNN_STATUS_BAD_PARAM";
  case CUDNN_STATUS_NOT_SUPPORTED: return "CUDNN_STATUS_NOT_SUPPORTED";
  case CUDNN_STATUS_ALLOC_FAILED: return "CUDNN_STATUS_ALLOC_FAILED";
  case CUDNN_STATUS_EXECUTION_FAILED: return "CUDNN_STATUS_EXECUTION_FAILED";
  }
  return "unknown cuDNN status";
}

cudnnStatus_t cudnnCreate(cudnnHandle_t *h) {
  if (!h) return CUDNN_STATUS_BAD_PARAM;
  *h = (cudnnHandle_t)calloc(1, sizeof **h);
  if (!*h) return CUDNN_STATUS_ALLOC_FAILED;
  (*h)->magic = 0xd11;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroy(cudnnHandle_t h) {
  if (!dnn_ok(h)) return CUDNN_STATUS_BAD_PARAM;
  h->magic = 0;
  free(h);
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetStream(cudnnHandle_t h, cudaStream_t s) {
  return dnn_ok(h) && dx_emu::stream_valid(s) ? CUDNN_STATUS_SUCCESS : CUDNN_STATUS_BAD_PARAM;
}

#define DX_EMU_DESC(kind, T)                                                                                       \
  cudnnStatus_t cudnnCreate##kind##Descriptor(T *d) {                                                               \
    if (!d) return CUDNN_STATUS_BAD_PARAM;                                                                           \
    *d = (T)calloc(1, sizeof **d);                                                                                   \
    return *d ? CUDNN_STATUS_SUCCESS : CUDNN_STATUS_ALLOC_FAILED;                                                    \
  }                                                                                                                  \
  cudnnStatus_t cudnnDestroy##kind##Descriptor(T d) {                                                              \
    free(d);                                                                                                         \
    return CUDNN_STATUS_SUCCESS;                                                                                     \
  }
DX_EMU_DESC(Tensor, cudnnTensorDescriptor_t)
DX_EMU_DESC(Filter, cudnnFilterDescriptor_t)
DX_EMU_DESC(Convolution, cudnnConvolutionDescriptor_t)

cudnnStatus_t cudnnSetTensor4dDescriptor(cudnnTensorDescriptor_t d, cudnnTensorFormat_t f, cudnnDataType_t t, int n,
                                         int c, int h, int w) {
  if (!d || n < 1 || c < 1 || h < 1 || w < 1) return CUDNN_STATUS_BAD_PARAM;
  if (f != CUDNN_TENSOR_NCHW || t != CUDNN_DATA_FLOAT) return CUDNN_STATUS_NOT_SUPPORTED;
  *d = dx_emu_tensor_desc{true, n, c, h, w};
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetFilter4dDescriptor(cudnnFilterDescriptor_t d, cudnnDataType_t t, cudnnTensorFormat_t f, int k,
                                         int c, int h, int w) {
  if (!d || k < 1 || c < 1 || h < 1 || w < 1) return CUDNN_STATUS_BAD_PARAM;
  if (f != CUDNN_TENSOR_NCHW || t != CUDNN_DATA_FLOAT) return CUDNN_STATUS_NOT_SUPPORTED;
  *d = dx_emu_filter_desc{true, k, c, h, w};
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetConvolution2dDescriptor(cudnnConvolutionDescriptor_t d, int pad_h, int pad_w, int u, int v,
                                              int dil_h, int dil_w, cudnnConvolutionMode_t mode,
                                              cudnnDataType_t compute) {
  if (!d || pad_h < 0 || pad_w < 0 || u < 1 || v < 1 || dil_h < 1 || dil_w < 1 ||
      (mode != CUDNN_CONVOLUTION && mode != CUDNN_CROSS_CORRELATION))
    return CUDNN_STATUS_BAD_PARAM;
  if (compute != CUDNN_DATA_FLOAT) return CUDNN_STATUS_NOT_SUPPORTED;
  *d = dx_emu_conv_desc{true, pad_h, pad_w, u, v, dil_h, dil_w, mode, CUDNN_DEFAULT_MATH};
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t d, cudnnMathType_t m) {
  if (!d || !d->set) return CUDNN_STATUS_BAD_PARAM;
  d->math = m;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolution2dForwardOutputDim(cudnnConvolutionDescriptor_t cd, cudnnTensorDescriptor_t xd,
                                                    cudnnFilterDescriptor_t wd, int *n, int *c, int *h, int *w) {
  if (!cd || !cd->set || !xd || !xd->set || !wd || !wd->set || !n || !c || !h || !w) return CUDNN_STATUS_BAD_PARAM;
  if (xd->c != wd->c) return CUDNN_STATUS_BAD_PARAM; /* one group: the filter's input channels are x's */
  const long long eh = (long long)cd->dh * (wd->h - 1) + 1, ew = (long long)cd->dw * (wd->w - 1) + 1;
  if (xd->h + 2LL * cd->ph < eh || xd->w + 2LL * cd->pw < ew) return CUDNN_STATUS_BAD_PARAM;
  *n = xd->n;
  *c = wd->k;
  *h = (int)((xd->h + 2LL * cd->ph - eh) / cd->u + 1);
  *w = (int)((xd->w + 2LL * cd->pw - ew) / cd->v + 1);
  return CUDNN_STATUS_SUCCESS;
}

/* The forward convolution x (xd) -> y (yd) with filter wd must be
 * consistent: y's shape is the one cuDNN computes. */
static cudnnStatus_t conv_shapes(cudnnConvolutionDescriptor_t cd, cudnnTensorDescriptor_t xd, cudnnFilterDescriptor_t wd,
                                 cudnnTensorDescriptor_t yd, const char *call) {
  int n, c, h, w;
  cudnnStatus_t st = cudnnGetConvolution2dForwardOutputDim(cd, xd, wd, &n, &c, &h, &w);
  if (st != CUDNN_STATUS_SUCCESS) {
    fprintf(stderr, "CUDA emulator: %s: descriptors do not describe a convolution\n", call);
    return st;
  }
  if (!yd || !yd->set || yd->n != n || yd->c != c || yd->h != h || yd->w != w) {
    fprintf(stderr, "CUDA emulator: %s: the output descriptor is not the convolution's output [%d %d %d %d]\n", call,
            n, c, h, w);
    return CUDNN_STATUS_BAD_PARAM;
  }
  return CUDNN_STATUS_SUCCESS;
}

static size_t fwd_ws(cudnnConvolutionFwdAlgo_t a, cudnnTensorDescriptor_t xd, cudnnFilterDescriptor_t wd,
                     cudnnTensorDescriptor_t yd) {
  switch (a) {
  case CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM: return (size_t)wd->c * wd->h * wd->w * sizeof(int) + 64;
  case CUDNN_CONVOLUTION_FWD_ALGO_GEMM: return (size_t)wd->c * wd->h * wd->w * yd->h * yd->w * sizeof(float);
  case CUDNN_CONVOLUTION_FWD_ALGO_FFT: return (size_t)xd->n * (xd->c + yd->c) * (xd->h + wd->h) * (xd->w + wd->w) * 8;
  default: return 0;
  }
}

/* What cuDNN might offer, fastest first: FFT and Winograd ahead of the GEMM
 * family, so callers that want exact float32 have to pick. Tensor-core
 * entries appear only when the descriptor's math type allows them; only
 * backward-data ALGO_0 (atomics) is non-deterministic. Returns the count. */
template <typename Algo> struct algo_offer {
  Algo a;
  cudnnMathType_t m;
};
template <typename Algo, size_t N, typename Perf, typename Mem>
static int offer(const algo_offer<Algo> (&order)[N], cudnnConvolutionDescriptor_t cd, int requested, Perf *perf,
                 Mem memory) {
  const bool tc = cd->math == CUDNN_DEFAULT_MATH || cd->math == CUDNN_TENSOR_OP_MATH ||
                  cd->math == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;
  int got = 0;
  for (const auto &o : order) {
    if (got == requested) break;
    if (o.m == CUDNN_TENSOR_OP_MATH && !tc) continue;
    Perf p;
    memset(&p, 0, sizeof p);
    p.algo = o.a;
    p.status = CUDNN_STATUS_SUCCESS;
    p.time = (float)got;
    p.memory = memory(o.a);
    const bool atomics =
        std::is_same<Algo, cudnnConvolutionBwdDataAlgo_t>::value && (int)o.a == (int)CUDNN_CONVOLUTION_BWD_DATA_ALGO_0;
    p.determinism = atomics ? CUDNN_NON_DETERMINISTIC : CUDNN_DETERMINISTIC;
    p.mathType = o.m;
    perf[got++] = p;
  }
  return got;
}

cudnnStatus_t cudnnGetConvolutionForwardAlgorithm_v7(cudnnHandle_t h, cudnnTensorDescriptor_t xd,
                                                     cudnnFilterDescriptor_t wd, cudnnConvolutionDescriptor_t cd,
                                                     cudnnTensorDescriptor_t yd, int requested, int *returned,
                                                     cudnnConvolutionFwdAlgoPerf_t *perf) {
  if (!dnn_ok(h) || !returned || !perf || requested < 1) return CUDNN_STATUS_BAD_PARAM;
  cudnnStatus_t st = conv_shapes(cd, xd, wd, yd, "cudnnGetConvolutionForwardAlgorithm_v7");
  if (st != CUDNN_STATUS_SUCCESS) return st;
  const algo_offer<cudnnConvolutionFwdAlgo_t> order[] = {
      {CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, CUDNN_TENSOR_OP_MATH},
      {CUDNN_CONVOLUTION_FWD_ALGO_FFT, CUDNN_FMA_MATH},
      {CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED, CUDNN_FMA_MATH},
      {CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, CUDNN_FMA_MATH},
      {CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, CUDNN_FMA_MATH},
      {CUDNN_CONVOLUTION_FWD_ALGO_GEMM, CUDNN_FMA_MATH}};
  *returned = offer(order, cd, requested, perf, [&](cudnnConvolutionFwdAlgo_t a) { return fwd_ws(a, xd, wd, yd); });
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolutionForwardWorkspaceSize(cudnnHandle_t h, cudnnTensorDescriptor_t xd,
                                                      cudnnFilterDescriptor_t wd, cudnnConvolutionDescriptor_t cd,
                                                      cudnnTensorDescriptor_t yd, cudnnConvolutionFwdAlgo_t algo,
                                                      size_t *bytes) {
  if (!dnn_ok(h) || !bytes || algo < 0 || algo >= CUDNN_CONVOLUTION_FWD_ALGO_COUNT) return CUDNN_STATUS_BAD_PARAM;
  cudnnStatus_t st = conv_shapes(cd, xd, wd, yd, "cudnnGetConvolutionForwardWorkspaceSize");
  if (st != CUDNN_STATUS_SUCCESS) return st;
  *bytes = fwd_ws(algo, xd, wd, yd);
  return CUDNN_STATUS_SUCCESS;
}

static bool scalars(const char *call, const void *alpha, const void *beta) {
  return host_scalar(call, "alpha", alpha) && host_scalar(call, "beta", beta);
}

static size_t tensor_bytes(const dx_emu_tensor_desc *d) { return (size_t)d->n * d->c * d->h * d->w * sizeof(float); }
static size_t filter_bytes(const dx_emu_filter_desc *d) { return (size_t)d->k * d->c * d->h * d->w * sizeof(float); }

/* The filter tap (i, j) in the convolution's mode: CUDNN_CONVOLUTION flips it. */
static size_t tap(const dx_emu_filter_desc *wd, cudnnConvolutionMode_t mode, int k, int c, int i, int j) {
  if (mode == CUDNN_CONVOLUTION) {
    i = wd->h - 1 - i;
    j = wd->w - 1 - j;
  }
  return (((size_t)k * wd->c + c) * wd->h + i) * wd->w + j;
}

static bool workspace(const char *call, size_t need, void *ws, size_t ws_bytes) {
  if (!need) return true;
  if (ws_bytes < need || !device_range(ws, need)) {
    fprintf(stderr, "CUDA emulator: %s: workspace of %zu bytes at %p, the algorithm needs %zu bytes of device memory\n",
            call, ws_bytes, ws, need);
    return false;
  }
  return true;
}

cudnnStatus_t cudnnConvolutionForward(cudnnHandle_t h, const void *alpha, cudnnTensorDescriptor_t xd, const void *x,
                                      cudnnFilterDescriptor_t wd, const void *w, cudnnConvolutionDescriptor_t cd,
                                      cudnnConvolutionFwdAlgo_t algo, void *ws, size_t ws_bytes, const void *beta,
                                      cudnnTensorDescriptor_t yd, void *y) {
  const char *call = "cudnnConvolutionForward";
  if (!dnn_ok(h) || algo < 0 || algo >= CUDNN_CONVOLUTION_FWD_ALGO_COUNT || !scalars(call, alpha, beta))
    return CUDNN_STATUS_BAD_PARAM;
  cudnnStatus_t st = conv_shapes(cd, xd, wd, yd, call);
  if (st != CUDNN_STATUS_SUCCESS) return st;
  device_scope dev;
  if (!operand(call, "x", x, tensor_bytes(xd)) || !operand(call, "w", w, filter_bytes(wd)) ||
      !operand(call, "y", y, tensor_bytes(yd)) || !workspace(call, fwd_ws(algo, xd, wd, yd), ws, ws_bytes))
    return CUDNN_STATUS_BAD_PARAM;
  const float a = *(const float *)alpha, b = *(const float *)beta;
  const float *X = (const float *)x, *W = (const float *)w;
  float *Y = (float *)y;
  for (int n = 0; n < yd->n; n++)
    for (int k = 0; k < yd->c; k++)
      for (int oh = 0; oh < yd->h; oh++)
        for (int ow = 0; ow < yd->w; ow++) {
          double s = 0;
          for (int c = 0; c < xd->c; c++)
            for (int i = 0; i < wd->h; i++) {
              const int ih = oh * cd->u - cd->ph + i * cd->dh;
              if (ih < 0 || ih >= xd->h) continue;
              const float *xr = X + (((size_t)n * xd->c + c) * xd->h + ih) * xd->w;
              for (int j = 0; j < wd->w; j++) {
                const int iw = ow * cd->v - cd->pw + j * cd->dw;
                if (iw < 0 || iw >= xd->w) continue;
                s += (double)xr[iw] * W[tap(wd, cd->mode, k, c, i, j)];
              }
            }
          float *o = Y + (((size_t)n * yd->c + k) * yd->h + oh) * yd->w + ow;
          *o = (float)(a * s + (b != 0.0f ? (double)b * *o : 0.0)); /* beta 0: y is not read */
        }
  return CUDNN_STATUS_SUCCESS;
}

static size_t bwd_ws(cudnnConvolutionBwdDataAlgo_t a, cudnnFilterDescriptor_t wd, cudnnTensorDescriptor_t dxd) {
  switch (a) {
  case CUDNN_CONVOLUTION_BWD_DATA_ALGO_1: return (size_t)wd->k * wd->h * wd->w * sizeof(int) + 64;
  case CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT_TILING: return tensor_bytes(dxd) * 2;
  default: return 0;
  }
}

cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithm_v7(cudnnHandle_t h, cudnnFilterDescriptor_t wd,
                                                          cudnnTensorDescriptor_t dyd,
                                                          cudnnConvolutionDescriptor_t cd,
                                                          cudnnTensorDescriptor_t dxd, int requested, int *returned,
                                                          cudnnConvolutionBwdDataAlgoPerf_t *perf) {
  if (!dnn_ok(h) || !returned || !perf || requested < 1) return CUDNN_STATUS_BAD_PARAM;
  cudnnStatus_t st = conv_shapes(cd, dxd, wd, dyd, "cudnnGetConvolutionBackwardDataAlgorithm_v7");
  if (st != CUDNN_STATUS_SUCCESS) return st;
  const algo_offer<cudnnConvolutionBwdDataAlgo_t> order[] = {
      {CUDNN_CONVOLUTION_BWD_DATA_ALGO_1, CUDNN_TENSOR_OP_MATH},
      {CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT_TILING, CUDNN_FMA_MATH},
      {CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD_NONFUSED, CUDNN_FMA_MATH},
      {CUDNN_CONVOLUTION_BWD_DATA_ALGO_0, CUDNN_FMA_MATH},
      {CUDNN_CONVOLUTION_BWD_DATA_ALGO_1, CUDNN_FMA_MATH}};
  *returned = offer(order, cd, requested, perf, [&](cudnnConvolutionBwdDataAlgo_t a) { return bwd_ws(a, wd, dxd); });
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolutionBackwardDataWorkspaceSize(cudnnHandle_t h, cudnnFilterDescriptor_t wd,
                                                           cudnnTensorDescriptor_t dyd,
                                                           cudnnConvolutionDescriptor_t cd,
                                                           cudnnTensorDescriptor_t dxd,
                                                           cudnnConvolutionBwdDataAlgo_t algo, size_t *bytes) {
  if (!dnn_ok(h) || !bytes || algo < 0 || algo >= CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT) return CUDNN_STATUS_BAD_PARAM;
  cudnnStatus_t st = conv_shapes(cd, dxd, wd, dyd, "cudnnGetConvolutionBackwardDataWorkspaceSize");
  if (st != CUDNN_STATUS_SUCCESS) return st;
  *bytes = bwd_ws(algo, wd, dxd);
  return CUDNN_STATUS_SUCCESS;
}

/* dx = alpha * (the adjoint of the forward convolution dx -> dy) dy + beta * dx. */
cudnnStatus_t cudnnConvolutionBackwardData(cudnnHandle_t h, const void *alpha, cudnnFilterDescriptor_t wd,
                                           const void *w, cudnnTensorDescriptor_t dyd, const void *dy,
                                           cudnnConvolutionDescriptor_t cd, cudnnConvolutionBwdDataAlgo_t algo,
                                           void *ws, size_t ws_bytes, const void *beta, cudnnTensorDescriptor_t dxd,
                                           void *dx) {
  const char *call = "cudnnConvolutionBackwardData";
  if (!dnn_ok(h) || algo < 0 || algo >= CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT || !scalars(call, alpha, beta))
    return CUDNN_STATUS_BAD_PARAM;
  cudnnStatus_t st = conv_shapes(cd, dxd, wd, dyd, call);
  if (st != CUDNN_STATUS_SUCCESS) return st;
  device_scope dev;
  if (!operand(call, "w", w, filter_bytes(wd)) || !operand(call, "dy", dy, tensor_bytes(dyd)) ||
      !operand(call, "dx", dx, tensor_bytes(dxd)) || !workspace(call, bwd_ws(algo, wd, dxd), ws, ws_bytes))
    return CUDNN_STATUS_BAD_PARAM;
  const float a = *(const float *)alpha, b = *(const float *)beta;
  const float *W = (const float *)w, *DY = (const float *)dy;
  float *DX = (float *)dx;
  const size_t total = (size_t)dxd->n * dxd->c * dxd->h * dxd->w;
  double *acc = (double *)calloc(total, sizeof *acc);
  if (!acc) return CUDNN_STATUS_ALLOC_FAILED;
  for (int n = 0; n < dyd->n; n++)
    for (int k = 0; k < dyd->c; k++)
      for (int oh = 0; oh < dyd->h; oh++)
        for (int ow = 0; ow < dyd->w; ow++) {
          const double g = DY[(((size_t)n * dyd->c + k) * dyd->h + oh) * dyd->w + ow];
          for (int c = 0; c < dxd->c; c++)
            for (int i = 0; i < wd->h; i++) {
              const int ih = oh * cd->u - cd->ph + i * cd->dh;
              if (ih < 0 || ih >= dxd->h) continue;
              double *xr = acc + (((size_t)n * dxd->c + c) * dxd->h + ih) * dxd->w;
              for (int j = 0; j < wd->w; j++) {
                const int iw = ow * cd->v - cd->pw + j * cd->dw;
                if (iw < 0 || iw >= dxd->w) continue;
                xr[iw] += g * W[tap(wd, cd->mode, k, c, i, j)];
              }
            }
        }
  for (size_t i = 0; i < total; i++) DX[i] = (float)(a * acc[i] + (b != 0.0f ? (double)b * DX[i] : 0.0));
  free(acc);
  return CUDNN_STATUS_SUCCESS;
}
