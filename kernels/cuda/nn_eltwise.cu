/* nn_eltwise.cu: the elementwise ops (GELU, sigmoid, GLU, add, scale/shift,
 * per-channel affine, LayerScale residual). Grid-stride loops over 64-bit
 * indices; each op is one kernel launch on the backend's stream.
 *
 * Threading: one backend per thread; no state. */
#include "nn_cuda.h"

#define GRID_LOOP(i, total)                                                              \
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < (total); \
       i += (long long)gridDim.x * blockDim.x)

__global__ void gelu_kernel(const float *x, float *y, long long n) {
  GRID_LOOP(i, n) {
    const float v = x[i];
    y[i] = 0.5f * v * (1.0f + erff(v * 0.70710678118654752440f));
  }
}

__global__ void sigmoid_kernel(const float *x, float *y, long long n) {
  GRID_LOOP(i, n) y[i] = 1.0f / (1.0f + expf(-x[i]));
}

__global__ void glu_kernel(const float *x, float *y, int c, long long inner, long long total) {
  GRID_LOOP(i, total) {
    const long long in = i % inner, oc = i / inner;
    const long long o = oc / c, ch = oc % c;
    const float a = x[(o * 2 * c + ch) * inner + in];
    const float b = x[(o * 2 * c + c + ch) * inner + in];
    y[i] = a * (1.0f / (1.0f + expf(-b)));
  }
}

__global__ void add_kernel(const float *a, const float *b, float *y, long long n) {
  GRID_LOOP(i, n) y[i] = a[i] + b[i];
}

__global__ void scale_shift_kernel(const float *x, float *y, long long n, float alpha, float beta) {
  GRID_LOOP(i, n) y[i] = alpha * x[i] + beta;
}

__global__ void channel_affine_kernel(const float *x, float *y, int c, long long inner, long long total,
                                      const float *scale, const float *bias) {
  GRID_LOOP(i, total) {
    const long long ch = (i / inner) % c;
    float v = x[i];
    if (scale) v *= scale[ch];
    if (bias) v += bias[ch];
    y[i] = v;
  }
}

__global__ void add_scaled_kernel(const float *x, float *y, int c, long long inner, long long total,
                                  const float *scale) {
  GRID_LOOP(i, total) {
    const long long ch = (i / inner) % c;
    y[i] += scale ? scale[ch] * x[i] : x[i];
  }
}

#define LAUNCH(kernel, total, ...)                                                               \
  do {                                                                                           \
    kernel<<<dx_cuda_grid((total), 256), 256, 0, dx_cuda_stream(be)>>>(__VA_ARGS__);             \
    DX_CUDA_LAUNCH_CHECK();                                                                      \
  } while (0)

extern "C" dx_status dx_cuda_nn_gelu(dx_backend *be, const float *x, float *y, long long n) {
  if (n < 0) return DX_ERR_INVALID;
  if (n) LAUNCH(gelu_kernel, n, x, y, n);
  return DX_OK;
}

extern "C" dx_status dx_cuda_nn_sigmoid(dx_backend *be, const float *x, float *y, long long n) {
  if (n < 0) return DX_ERR_INVALID;
  if (n) LAUNCH(sigmoid_kernel, n, x, y, n);
  return DX_OK;
}

extern "C" dx_status dx_cuda_nn_glu(dx_backend *be, const float *x, float *y, int outer, int c, long long inner) {
  if (outer <= 0 || c <= 0 || inner <= 0) return DX_ERR_INVALID;
  const long long total = (long long)outer * c * inner;
  LAUNCH(glu_kernel, total, x, y, c, inner, total);
  return DX_OK;
}

extern "C" dx_status dx_cuda_nn_add(dx_backend *be, const float *a, const float *b, float *y, long long n) {
  if (n < 0) return DX_ERR_INVALID;
  if (n) LAUNCH(add_kernel, n, a, b, y, n);
  return DX_OK;
}

extern "C" dx_status dx_cuda_nn_scale_shift(dx_backend *be, const float *x, float *y, long long n, float alpha,
                                            float beta) {
  if (n < 0) return DX_ERR_INVALID;
  if (n) LAUNCH(scale_shift_kernel, n, x, y, n, alpha, beta);
  return DX_OK;
}

extern "C" dx_status dx_cuda_nn_channel_affine(dx_backend *be, const float *x, float *y, int outer, int c,
                                               long long inner, const float *scale, const float *bias) {
  if (outer <= 0 || c <= 0 || inner <= 0) return DX_ERR_INVALID;
  const long long total = (long long)outer * c * inner;
  LAUNCH(channel_affine_kernel, total, x, y, c, inner, total, scale, bias);
  return DX_OK;
}

extern "C" dx_status dx_cuda_nn_add_scaled(dx_backend *be, const float *x, float *y, int outer, int c,
                                           long long inner, const float *scale) {
  if (outer <= 0 || c <= 0 || inner <= 0) return DX_ERR_INVALID;
  const long long total = (long long)outer * c * inner;
  LAUNCH(add_scaled_kernel, total, x, y, c, inner, total, scale);
  return DX_OK;
}
