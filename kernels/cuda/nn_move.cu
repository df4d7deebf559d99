/* nn_move.cu: data movement ops: general permute (up to 6-D), 1-D padding
 * (zero / reflect), strided 2-D copy, and the overlapping-frame helpers of
 * the Demucs v3 BLSTM (unfold to channels-last frames, fold back keeping
 * each frame's middle). Every output element is computed by one thread
 * (gathers, no atomics), so results are deterministic; frames_fold_add adds
 * the frames in increasing order like the CPU reference.
 *
 * Threading: one backend per thread; no state. */
#include "nn_cuda.h"

#define GRID_LOOP(i, total)                                                              \
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < (total); \
       i += (long long)gridDim.x * blockDim.x)

typedef struct {
  int ndim;
  long long dims[6];   /* output dimensions */
  long long stride[6]; /* input stride of output dimension d */
} perm_desc;

__global__ void permute_kernel(const float *x, float *y, perm_desc p, long long total) {
  GRID_LOOP(i, total) {
    long long r = i, off = 0;
    for (int d = p.ndim - 1; d >= 0; d--) {
      const long long c = r % p.dims[d];
      r /= p.dims[d];
      off += c * p.stride[d];
    }
    y[i] = x[off];
  }
}

extern "C" dx_status dx_cuda_nn_permute(dx_backend *be, const float *x, float *y, int ndim, const int *shape,
                                        const int *perm) {
  if (ndim < 1 || ndim > 6 || !shape || !perm) return DX_ERR_INVALID;
  long long in_stride[6], total = 1;
  int seen[6] = {0};
  for (int d = ndim - 1; d >= 0; d--) {
    if (shape[d] <= 0) return DX_ERR_INVALID;
    in_stride[d] = total;
    total *= shape[d];
  }
  perm_desc p;
  p.ndim = ndim;
  for (int d = 0; d < ndim; d++) {
    if (perm[d] < 0 || perm[d] >= ndim || seen[perm[d]]) return DX_ERR_INVALID;
    seen[perm[d]] = 1;
    p.dims[d] = shape[perm[d]];
    p.stride[d] = in_stride[perm[d]];
  }
  for (int d = ndim; d < 6; d++) p.dims[d] = 1, p.stride[d] = 0;
  permute_kernel<<<dx_cuda_grid(total, 256), 256, 0, dx_cuda_stream(be)>>>(x, y, p, total);
  DX_CUDA_LAUNCH_CHECK();
  return DX_OK;
}

__global__ void pad1d_kernel(const float *x, float *y, int lin, int left, int lout, int reflect, long long total) {
  GRID_LOOP(i, total) {
    const long long r = i / lout;
    int s = (int)(i % lout) - left;
    float v;
    if (reflect) {
      if (s < 0) s = -s;
      if (s >= lin) s = 2 * (lin - 1) - s;
      v = x[r * lin + s];
    } else {
      v = (s >= 0 && s < lin) ? x[r * lin + s] : 0.0f;
    }
    y[i] = v;
  }
}

extern "C" dx_status dx_cuda_nn_pad1d(dx_backend *be, const float *x, float *y, int rows, int lin, int left, int right,
                                      dx_pad_mode mode) {
  if (rows <= 0 || lin <= 0 || left < 0 || right < 0) return DX_ERR_INVALID;
  if (mode == DX_PAD_REFLECT && (left >= lin || right >= lin)) return DX_ERR_INVALID;
  if (mode != DX_PAD_REFLECT && mode != DX_PAD_ZERO) return DX_ERR_INVALID;
  const long long lout = (long long)lin + left + right;
  if (lout > 0x7fffffffLL) return DX_ERR_INVALID;
  const long long total = (long long)rows * lout;
  pad1d_kernel<<<dx_cuda_grid(total, 256), 256, 0, dx_cuda_stream(be)>>>(x, y, lin, left, (int)lout,
                                                                         mode == DX_PAD_REFLECT, total);
  DX_CUDA_LAUNCH_CHECK();
  return DX_OK;
}

__global__ void copy2d_kernel(const float *x, long long ldx, float *y, long long ldy, long long cols, long long total) {
  GRID_LOOP(i, total) {
    const long long r = i / cols, j = i % cols;
    y[r * ldy + j] = x[r * ldx + j];
  }
}

extern "C" dx_status dx_cuda_nn_copy2d(dx_backend *be, const float *x, long long ldx, float *y, long long ldy,
                                       int rows, long long cols) {
  if (rows < 0 || cols < 0 || ldx < cols || ldy < cols) return DX_ERR_INVALID;
  const long long total = (long long)rows * cols;
  if (!total) return DX_OK;
  copy2d_kernel<<<dx_cuda_grid(total, 256), 256, 0, dx_cuda_stream(be)>>>(x, ldx, y, ldy, cols, total);
  DX_CUDA_LAUNCH_CHECK();
  return DX_OK;
}

/* f[b][k][j][c] = x[b][c][k*stride + j], zero past len. */
__global__ void frames_unfold_kernel(const float *x, float *f, int channels, int len, int width, int stride,
                                     int nframes, long long total) {
  GRID_LOOP(i, total) {
    const int c = (int)(i % channels);
    long long r = i / channels;
    const int j = (int)(r % width);
    r /= width;
    const int k = (int)(r % nframes);
    const long long b = r / nframes;
    const long long t = (long long)k * stride + j;
    f[i] = t < len ? x[(b * channels + c) * len + t] : 0.0f;
  }
}

extern "C" dx_status dx_cuda_nn_frames_unfold(dx_backend *be, const float *x, float *f, int batch, int channels,
                                              int len, int width, int stride, int nframes) {
  if (batch <= 0 || channels <= 0 || len <= 0 || width <= 0 || stride <= 0 || nframes <= 0) return DX_ERR_INVALID;
  const long long total = (long long)batch * nframes * width * channels;
  frames_unfold_kernel<<<dx_cuda_grid(total, 256), 256, 0, dx_cuda_stream(be)>>>(x, f, channels, len, width, stride,
                                                                                 nframes, total);
  DX_CUDA_LAUNCH_CHECK();
  return DX_OK;
}

/* y[b][c][t] += f[b][k][t - k*stride][c] over the frames k whose kept part covers t, k increasing. */
__global__ void frames_fold_add_kernel(const float *f, float *y, int channels, int len, int width, int stride,
                                       int nframes, int limit, long long total) {
  GRID_LOOP(i, total) {
    const long long t = i % len, bc = i / len;
    const int c = (int)(bc % channels);
    const long long b = bc / channels;
    long long k0 = t - width + 1 <= 0 ? 0 : (t - width + 1 + stride - 1) / stride;
    long long k1 = t / stride;
    if (k1 > nframes - 1) k1 = nframes - 1;
    float acc = y[i];
    for (long long k = k0; k <= k1; k++) {
      const long long j = t - k * stride;
      const int j0 = k == 0 ? 0 : limit, j1 = k == nframes - 1 ? width : width - limit;
      if (j < j0 || j >= j1) continue;
      acc += f[((b * nframes + k) * width + j) * channels + c];
    }
    y[i] = acc;
  }
}

extern "C" dx_status dx_cuda_nn_frames_fold_add(dx_backend *be, const float *f, float *y, int batch, int channels,
                                                int len, int width, int stride, int nframes, int limit) {
  if (batch <= 0 || channels <= 0 || len <= 0 || width <= 0 || stride <= 0 || nframes <= 0 || limit < 0 ||
      2 * limit >= width)
    return DX_ERR_INVALID;
  const long long total = (long long)batch * channels * len;
  frames_fold_add_kernel<<<dx_cuda_grid(total, 256), 256, 0, dx_cuda_stream(be)>>>(f, y, channels, len, width, stride,
                                                                                   nframes, limit, total);
  DX_CUDA_LAUNCH_CHECK();
  return DX_OK;
}
