/* test_emu.cu: the CUDA emulator's own tests (built only with
 * DEMIX_CUDA=EMULATE; run by tools/test with the emulated GPU tier). They
 * check that it behaves as the device does where kernels/cuda relies on it:
 * barrier and shuffle semantics, launch limits, the memory faults and copy
 * checks that stand in for compute-sanitizer, and the library emulations
 * against known answers (a convolution by hand, the adjoint identity of the
 * transposed convolution, the FFT of a cosine). Misuse that the device
 * would fault on is run in a forked child that must die with the message. */
#include <cublas_v2.h>
#include <cudnn.h>
#include <cufft.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern "C" {
#include "dx_test.h"
}

/* ---- helpers ---- */

/* Run fn in a child; true when it died of SIGABRT and its stderr holds `want`. */
static bool dies_with(void (*fn)(void), const char *want) {
  int fd[2];
  if (pipe(fd)) return false;
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fd[1], 2);
    close(fd[0]);
    fn();
    _exit(0);
  }
  close(fd[1]);
  static char buf[65536];
  size_t got = 0;
  ssize_t r;
  while ((r = read(fd[0], buf + got, sizeof buf - 1 - got)) > 0) got += (size_t)r;
  buf[got] = 0;
  close(fd[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  const bool ok = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT && strstr(buf, want);
  if (!ok) fprintf(stderr, "  child status %d, stderr:\n%s\n", status, buf);
  return ok;
}

static float *dev_floats(size_t n) {
  void *p = NULL;
  if (cudaMalloc(&p, n * sizeof(float)) != cudaSuccess) return NULL;
  return (float *)p;
}

/* ---- kernels ---- */

__global__ void block_sum_kernel(const int *x, int n, long long *out) {
  __shared__ long long sm[256];
  long long v = 0;
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) v += x[i];
  sm[threadIdx.x] = v;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if ((int)threadIdx.x < s) sm[threadIdx.x] += sm[threadIdx.x + s];
    __syncthreads();
  }
  if (threadIdx.x == 0) out[blockIdx.x] = sm[0];
}

/* One warp per row; warps past the last row leave before the shuffles. */
__global__ void warp_sum_kernel(const float *x, int rows, int cols, float *out) {
  const int lane = threadIdx.x & 31, row = blockIdx.x * (blockDim.x / 32) + (threadIdx.x >> 5);
  if (row >= rows) return;
  float v = 0;
  for (int j = lane; j < cols; j += 32) v += x[(size_t)row * cols + j];
  for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
  if (lane == 0) out[row] = v;
}

__global__ void write_kernel(float *p, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i <= n) p[i] = 1.0f; /* one past the end on purpose */
}

__global__ void mixed_barrier_kernel(float *p) {
  if (threadIdx.x < 16) {
    p[threadIdx.x] = __shfl_down_sync(0xffffffffu, p[threadIdx.x], 1);
  } else {
    __syncthreads();
  }
}

__global__ void late_barrier_kernel(float *p) {
  if (blockIdx.x == 1) __syncthreads();
  p[blockIdx.x * blockDim.x + threadIdx.x] = 0.0f;
}

__global__ void fill_kernel(float *p, int n, float v) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) p[i] = v;
}

/* ---- kernel semantics ---- */

DX_TEST(block_barriers_reduce_exactly) {
  const int n = 100003, blocks = 37;
  int *h = (int *)malloc(n * sizeof *h);
  long long want = 0;
  for (int i = 0; i < n; i++) want += h[i] = (i * 7919) % 1001 - 500;
  int *x = NULL;
  long long *part = NULL;
  CHECK(cudaMalloc(&x, n * sizeof *x) == cudaSuccess);
  CHECK(cudaMalloc(&part, blocks * sizeof *part) == cudaSuccess);
  CHECK(cudaMemcpy(x, h, n * sizeof *h, cudaMemcpyHostToDevice) == cudaSuccess);
  block_sum_kernel<<<blocks, 256>>>(x, n, part);
  CHECK(cudaGetLastError() == cudaSuccess);
  long long hp[blocks], got = 0;
  CHECK(cudaMemcpy(hp, part, sizeof hp, cudaMemcpyDeviceToHost) == cudaSuccess);
  for (int b = 0; b < blocks; b++) got += hp[b];
  CHECK_MSG(got == want, "sum %lld, expected %lld", got, want);
  cudaFree(x);
  cudaFree(part);
  free(h);
}

DX_TEST(warp_shuffles_with_exited_warps) {
  const int rows = 13, cols = 70; /* 4 warps per block: the last block has warps with no row */
  float h[rows * cols], want[rows], got[rows];
  for (int r = 0; r < rows; r++) {
    want[r] = 0;
    for (int j = 0; j < cols; j++) want[r] += h[r * cols + j] = (float)((r + 1) * (j % 5));
  }
  float *x = dev_floats(rows * cols), *out = dev_floats(rows);
  CHECK(cudaMemcpy(x, h, sizeof h, cudaMemcpyHostToDevice) == cudaSuccess);
  warp_sum_kernel<<<(rows + 3) / 4, 128>>>(x, rows, cols, out);
  CHECK(cudaGetLastError() == cudaSuccess);
  CHECK(cudaMemcpy(got, out, sizeof got, cudaMemcpyDeviceToHost) == cudaSuccess);
  for (int r = 0; r < rows; r++) CHECK_MSG(got[r] == want[r], "row %d: %g, expected %g", r, got[r], want[r]);
  cudaFree(x);
  cudaFree(out);
}

DX_TEST(launch_limits_are_errors) {
  float *p = dev_floats(1024);
  fill_kernel<<<1, 1025>>>(p, 1024, 1.0f);
  CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration);
  CHECK(cudaGetLastError() == cudaSuccess); /* read once, then cleared */
  fill_kernel<<<dim3(1, 65536), 32>>>(p, 1024, 1.0f);
  CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration);
  fill_kernel<<<0, 32>>>(p, 1024, 1.0f);
  CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration);
  fill_kernel<<<dim3(2, 3, 4), dim3(8, 4, 2)>>>(p, 1024, 2.0f);
  CHECK(cudaGetLastError() == cudaSuccess);
  float h[1024];
  CHECK(cudaMemcpy(h, p, sizeof h, cudaMemcpyDeviceToHost) == cudaSuccess);
  CHECK(h[0] == 2.0f && h[1023] == 2.0f);
  cudaFree(p);
}

static void oob_write(void) {
  float *p = dev_floats(1024);
  write_kernel<<<5, 256>>>(p, 1024);
}
static void host_read(void) {
  float *p = dev_floats(64);
  volatile float v = p[3];
  (void)v;
}
static void mixed_barriers(void) {
  float *p = dev_floats(64);
  mixed_barrier_kernel<<<1, 32>>>(p);
}
static void late_barrier(void) {
  float *p = dev_floats(256);
  late_barrier_kernel<<<2, 64>>>(p);
}

DX_TEST(misuse_dies_with_a_report) {
  CHECK(dies_with(oob_write, "past the end of a device allocation"));
  CHECK(dies_with(host_read, "host code accessed device memory"));
  CHECK(dies_with(mixed_barriers, "wait at a warp shuffle"));
  CHECK(dies_with(late_barrier, "barriers must be uniform"));
}

/* ---- memory and copies ---- */

DX_TEST(copies_check_their_ranges) {
  float *p = dev_floats(100), h[200] = {0};
  CHECK(cudaMemcpy(p, h, 100 * sizeof(float), cudaMemcpyHostToDevice) == cudaSuccess);
  CHECK(cudaMemcpy(p, h, 101 * sizeof(float), cudaMemcpyHostToDevice) == cudaErrorInvalidValue);
  CHECK(cudaMemcpy(p + 50, h, 50 * sizeof(float), cudaMemcpyHostToDevice) == cudaSuccess);
  CHECK(cudaMemcpy(h, p, 10 * sizeof(float), cudaMemcpyHostToDevice) == cudaErrorInvalidValue); /* kind swapped */
  CHECK(cudaMemcpy(h, h + 100, 10 * sizeof(float), cudaMemcpyDeviceToHost) == cudaErrorInvalidValue);
  CHECK(cudaMemsetAsync(p, 0, 101 * sizeof(float), 0) == cudaErrorInvalidValue);
  CHECK(cudaFree(p + 1) == cudaErrorInvalidValue);
  cudaGetLastError();
  CHECK(cudaFree(p) == cudaSuccess);
  /* fresh device memory is not zeroed: NaNs here */
  float *fresh = dev_floats(8), hf[8];
  CHECK(cudaMemcpy(hf, fresh, sizeof hf, cudaMemcpyDeviceToHost) == cudaSuccess);
  CHECK(isnan(hf[0]) && isnan(hf[7]));
  cudaFree(fresh);
  void *big = NULL;
  size_t free_b = 0, total_b = 0;
  CHECK(cudaMemGetInfo(&free_b, &total_b) == cudaSuccess);
  CHECK(cudaMalloc(&big, total_b + 1) == cudaErrorMemoryAllocation && big == NULL);
  CHECK(cudaGetLastError() == cudaErrorMemoryAllocation);
}

/* ---- cuBLAS ---- */

DX_TEST(sgemm_column_major_and_checks) {
  /* C (2x3) = A (2x4) B (4x3), column-major; A stored transposed (op T, lda 4). */
  const int m = 2, n = 3, k = 4;
  float At[4 * 2], B[4 * 3], C[2 * 3], want[2 * 3];
  for (int i = 0; i < m; i++)
    for (int l = 0; l < k; l++) At[i * k + l] = (float)(i + 2 * l + 1); /* A[i][l] */
  for (int l = 0; l < k; l++)
    for (int j = 0; j < n; j++) B[j * k + l] = (float)(l - j);
  for (int i = 0; i < m; i++)
    for (int j = 0; j < n; j++) {
      want[j * m + i] = 0;
      for (int l = 0; l < k; l++) want[j * m + i] += At[i * k + l] * B[j * k + l];
    }
  float *dA = dev_floats(8), *dB = dev_floats(12), *dC = dev_floats(6);
  CHECK(cudaMemcpy(dA, At, sizeof At, cudaMemcpyHostToDevice) == cudaSuccess);
  CHECK(cudaMemcpy(dB, B, sizeof B, cudaMemcpyHostToDevice) == cudaSuccess);
  cublasHandle_t h;
  CHECK(cublasCreate(&h) == CUBLAS_STATUS_SUCCESS);
  const float one = 1, zero = 0;
  CHECK(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &one, dA, k, dB, k, &zero, dC, m) == CUBLAS_STATUS_SUCCESS);
  CHECK(cudaMemcpy(C, dC, sizeof C, cudaMemcpyDeviceToHost) == cudaSuccess);
  for (int i = 0; i < 6; i++) CHECK_MSG(C[i] == want[i], "C[%d] = %g, expected %g", i, C[i], want[i]);
  CHECK(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &one, dA, k - 1, dB, k, &zero, dC, m) ==
        CUBLAS_STATUS_INVALID_VALUE); /* lda below k */
  CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &one, dA, m, dB, k, &zero, dC, m) ==
        CUBLAS_STATUS_SUCCESS); /* same bytes read as 2x4: fits */
  CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k + 1, &one, dA, m, dB, k + 1, &zero, dC, m) ==
        CUBLAS_STATUS_INVALID_VALUE); /* A and B would run past their allocations */
  CHECK(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, dA, dA, k, dB, k, &zero, dC, m) ==
        CUBLAS_STATUS_INVALID_VALUE); /* alpha in device memory with pointer mode host */
  cublasDestroy(h);
  cudaFree(dA);
  cudaFree(dB);
  cudaFree(dC);
}

/* ---- cuDNN ---- */

struct conv_setup {
  cudnnHandle_t h;
  cudnnTensorDescriptor_t xd, yd;
  cudnnFilterDescriptor_t wd;
  cudnnConvolutionDescriptor_t cd;
};

static void conv_open(conv_setup *s, int n, int c, int hh, int ww, int k, int kh, int kw, int ph, int pw, int u, int v,
                      int dh, int dw, int *on, int *oc, int *oh, int *ow) {
  CHECK(cudnnCreate(&s->h) == CUDNN_STATUS_SUCCESS);
  cudnnCreateTensorDescriptor(&s->xd);
  cudnnCreateTensorDescriptor(&s->yd);
  cudnnCreateFilterDescriptor(&s->wd);
  cudnnCreateConvolutionDescriptor(&s->cd);
  CHECK(cudnnSetTensor4dDescriptor(s->xd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, n, c, hh, ww) == CUDNN_STATUS_SUCCESS);
  CHECK(cudnnSetFilter4dDescriptor(s->wd, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, k, c, kh, kw) == CUDNN_STATUS_SUCCESS);
  CHECK(cudnnSetConvolution2dDescriptor(s->cd, ph, pw, u, v, dh, dw, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT) ==
        CUDNN_STATUS_SUCCESS);
  CHECK(cudnnGetConvolution2dForwardOutputDim(s->cd, s->xd, s->wd, on, oc, oh, ow) == CUDNN_STATUS_SUCCESS);
  CHECK(cudnnSetTensor4dDescriptor(s->yd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, *on, *oc, *oh, *ow) ==
        CUDNN_STATUS_SUCCESS);
}

static void conv_close(conv_setup *s) {
  cudnnDestroyTensorDescriptor(s->xd);
  cudnnDestroyTensorDescriptor(s->yd);
  cudnnDestroyFilterDescriptor(s->wd);
  cudnnDestroyConvolutionDescriptor(s->cd);
  cudnnDestroy(s->h);
}

DX_TEST(conv_by_hand) {
  /* cross-correlation of [1 2 3 4] with [1 0 -1], padding 1: y[i] = x[i-1] - x[i+1] */
  conv_setup s;
  int on, oc, oh, ow;
  conv_open(&s, 1, 1, 1, 4, 1, 1, 3, 0, 1, 1, 1, 1, 1, &on, &oc, &oh, &ow);
  CHECK(on == 1 && oc == 1 && oh == 1 && ow == 4);
  const float hx[4] = {1, 2, 3, 4}, hw[3] = {1, 0, -1}, want[4] = {-2, -2, -2, 3};
  float *x = dev_floats(4), *w = dev_floats(3), *y = dev_floats(4), hy[4];
  cudaMemcpy(x, hx, sizeof hx, cudaMemcpyHostToDevice);
  cudaMemcpy(w, hw, sizeof hw, cudaMemcpyHostToDevice);
  const float one = 1, zero = 0;
  CHECK(cudnnConvolutionForward(s.h, &one, s.xd, x, s.wd, w, s.cd, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, NULL, 0,
                                &zero, s.yd, y) == CUDNN_STATUS_SUCCESS);
  cudaMemcpy(hy, y, sizeof hy, cudaMemcpyDeviceToHost);
  for (int i = 0; i < 4; i++) CHECK_MSG(hy[i] == want[i], "y[%d] = %g, expected %g", i, hy[i], want[i]);
  /* an algorithm with a workspace refuses to run without it */
  size_t ws = 0;
  CHECK(cudnnGetConvolutionForwardWorkspaceSize(s.h, s.xd, s.wd, s.cd, s.yd,
                                                CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, &ws) ==
        CUDNN_STATUS_SUCCESS);
  CHECK(ws > 0);
  CHECK(cudnnConvolutionForward(s.h, &one, s.xd, x, s.wd, w, s.cd, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM,
                                NULL, 0, &zero, s.yd, y) == CUDNN_STATUS_BAD_PARAM);
  /* an output descriptor that is not the convolution's output */
  cudnnSetTensor4dDescriptor(s.yd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, 1, 1, 3);
  CHECK(cudnnConvolutionForward(s.h, &one, s.xd, x, s.wd, w, s.cd, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, NULL, 0,
                                &zero, s.yd, y) == CUDNN_STATUS_BAD_PARAM);
  conv_close(&s);
  cudaFree(x);
  cudaFree(w);
  cudaFree(y);
}

DX_TEST(backward_data_is_the_adjoint) {
  /* <conv(x), g> = <x, conv^T(g)> for a strided, padded, dilated 2-D convolution */
  conv_setup s;
  int on, oc, oh, ow;
  const int n = 2, c = 3, hh = 9, ww = 11, k = 4, kh = 3, kw = 2;
  conv_open(&s, n, c, hh, ww, k, kh, kw, 1, 2, 2, 3, 2, 1, &on, &oc, &oh, &ow);
  const size_t nx = (size_t)n * c * hh * ww, nw = (size_t)k * c * kh * kw, ny = (size_t)on * oc * oh * ow;
  float *hx = (float *)malloc(nx * 4), *hw = (float *)malloc(nw * 4), *hg = (float *)malloc(ny * 4);
  float *hy = (float *)malloc(ny * 4), *hgx = (float *)malloc(nx * 4);
  unsigned r = 12345;
  auto rnd = [&r]() { return (r = r * 1103515245u + 12345u, (float)((r >> 9) & 0xffff) / 65536.0f - 0.5f); };
  for (size_t i = 0; i < nx; i++) hx[i] = rnd();
  for (size_t i = 0; i < nw; i++) hw[i] = rnd();
  for (size_t i = 0; i < ny; i++) hg[i] = rnd();
  float *x = dev_floats(nx), *w = dev_floats(nw), *g = dev_floats(ny), *y = dev_floats(ny), *gx = dev_floats(nx);
  cudaMemcpy(x, hx, nx * 4, cudaMemcpyHostToDevice);
  cudaMemcpy(w, hw, nw * 4, cudaMemcpyHostToDevice);
  cudaMemcpy(g, hg, ny * 4, cudaMemcpyHostToDevice);
  const float one = 1, zero = 0;
  CHECK(cudnnConvolutionForward(s.h, &one, s.xd, x, s.wd, w, s.cd, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, NULL, 0,
                                &zero, s.yd, y) == CUDNN_STATUS_SUCCESS);
  CHECK(cudnnConvolutionBackwardData(s.h, &one, s.wd, w, s.yd, g, s.cd, CUDNN_CONVOLUTION_BWD_DATA_ALGO_0, NULL, 0,
                                     &zero, s.xd, gx) == CUDNN_STATUS_SUCCESS);
  cudaMemcpy(hy, y, ny * 4, cudaMemcpyDeviceToHost);
  cudaMemcpy(hgx, gx, nx * 4, cudaMemcpyDeviceToHost);
  double a = 0, b = 0, scale = 0;
  for (size_t i = 0; i < ny; i++) a += (double)hy[i] * hg[i], scale += fabs((double)hy[i] * hg[i]);
  for (size_t i = 0; i < nx; i++) b += (double)hx[i] * hgx[i];
  CHECK_MSG(fabs(a - b) <= 1e-5 * scale, "<conv x, g> = %.9g, <x, conv^T g> = %.9g", a, b);
  conv_close(&s);
  cudaFree(x);
  cudaFree(w);
  cudaFree(g);
  cudaFree(y);
  cudaFree(gx);
  free(hx);
  free(hw);
  free(hg);
  free(hy);
  free(hgx);
}

/* ---- cuFFT ---- */

DX_TEST(fft_of_a_cosine) {
  const int nfft = 64, bins = nfft / 2 + 1, batch = 3;
  float h[batch * nfft], back[batch * nfft];
  for (int b = 0; b < batch; b++)
    for (int i = 0; i < nfft; i++) h[b * nfft + i] = (float)cos(2 * M_PI * (b + 1) * 5 * i / nfft);
  float *x = dev_floats(batch * nfft), *y = dev_floats(batch * nfft);
  cufftComplex *z = NULL;
  CHECK(cudaMalloc(&z, batch * bins * sizeof *z) == cudaSuccess);
  cudaMemcpy(x, h, sizeof h, cudaMemcpyHostToDevice);
  cufftHandle fwd, inv;
  int n = nfft;
  size_t work = 0;
  CHECK(cufftCreate(&fwd) == CUFFT_SUCCESS && cufftCreate(&inv) == CUFFT_SUCCESS);
  CHECK(cufftMakePlanMany(fwd, 1, &n, NULL, 1, 0, NULL, 1, 0, CUFFT_R2C, batch, &work) == CUFFT_SUCCESS);
  CHECK(cufftMakePlanMany(inv, 1, &n, NULL, 1, 0, NULL, 1, 0, CUFFT_C2R, batch, &work) == CUFFT_SUCCESS);
  CHECK(cufftExecR2C(fwd, x, z) == CUFFT_SUCCESS);
  cufftComplex hz[batch * bins];
  cudaMemcpy(hz, z, sizeof hz, cudaMemcpyDeviceToHost);
  for (int b = 0; b < batch; b++)
    for (int k = 0; k < bins; k++) {
      const double want = k == (b + 1) * 5 ? nfft / 2.0 : 0.0;
      CHECK_MSG(fabs(hz[b * bins + k].x - want) < 1e-4 && fabs(hz[b * bins + k].y) < 1e-4, "batch %d bin %d: %g%+gi",
                b, k, hz[b * bins + k].x, hz[b * bins + k].y);
    }
  CHECK(cufftExecC2R(inv, z, y) == CUFFT_SUCCESS);
  cudaMemcpy(back, y, sizeof back, cudaMemcpyDeviceToHost);
  for (int i = 0; i < batch * nfft; i++) CHECK_NEAR(back[i] / nfft, h[i], 1e-5);
  CHECK(cufftExecC2R(fwd, z, y) == CUFFT_INVALID_TYPE);
  CHECK(cufftExecR2C(fwd, x + 1, z) == CUFFT_EXEC_FAILED); /* input runs past its allocation */
  cufftDestroy(fwd);
  cufftDestroy(inv);
  cudaFree(x);
  cudaFree(y);
  cudaFree(z);
}

DX_TEST_MAIN(DX_T(block_barriers_reduce_exactly), DX_T(warp_shuffles_with_exited_warps),
             DX_T(launch_limits_are_errors), DX_T(misuse_dies_with_a_report), DX_T(copies_check_their_ranges),
             DX_T(sgemm_column_major_and_checks), DX_T(conv_by_hand), DX_T(backward_data_is_the_adjoint),
             DX_T(fft_of_a_cosine))
