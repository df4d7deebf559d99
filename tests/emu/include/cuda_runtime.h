/* cuda_runtime.h of the CUDA emulator: the part of the CUDA runtime API and
 * of the kernel language that kernels/cuda uses, implemented on the CPU
 * (tests/emu/emu_runtime.cpp) so that the CUDA backend's own code (kernels,
 * launch configurations, allocator, host-side flow) runs in the default
 * test tier on hosts without a GPU. It says nothing about the real
 * libraries or the hardware: the GPU tier on a device does.
 *
 * What it enforces, as the device would (or compute-sanitizer):
 *  - launch limits (block <= 1024 threads, grid.y/z <= 65535, no zero
 *    dimension) give cudaErrorInvalidConfiguration from cudaGetLastError;
 *  - __syncthreads waits for every thread of the block still running, a
 *    warp shuffle for every lane of the warp still running; a block whose
 *    threads wait at different barriers is reported and aborts;
 *  - device memory: each allocation ends at an inaccessible page, so a
 *    kernel writing past it faults; host code touching device memory
 *    faults and is reported (the pages are open only while emulated device
 *    work runs); copies and library calls check that their ranges lie in
 *    one allocation; new allocations hold NaNs (device memory is not
 *    zeroed), so reading what nothing wrote shows; allocations beyond the
 *    emulated memory size (DEMIX_EMU_DEVICE_MB, default 8192) fail with
 *    cudaErrorMemoryAllocation.
 * Kernels run synchronously on the launching thread; streams only order. */
#ifndef DX_EMU_CUDA_RUNTIME_H
#define DX_EMU_CUDA_RUNTIME_H

#ifndef __cplusplus
#error "the CUDA emulator is C++ (the kernels are compiled as C++)"
#endif

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <tuple>

/* ---- kernel language ---- */
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
/* One block runs at a time on a host thread, its threads as coroutines of
 * that thread: thread-local static storage is exactly one block's shared memory. */
#define __shared__ static thread_local

struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x, y, z;
  dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct float2 {
  float x, y;
};
static inline float2 make_float2(float x, float y) { return float2{x, y}; }

extern thread_local uint3 threadIdx, blockIdx;
extern thread_local dim3 blockDim, gridDim;

void __syncthreads(void);

namespace dx_emu {
/* Exchange one 8-byte slot within the warp (two warp barriers). */
unsigned long long warp_exchange(unsigned long long mine, int src_lane, int width);
}

template <typename T> static inline T dx_emu_shfl(T v, int src_lane, int width) {
  static_assert(sizeof(T) <= 8, "shuffle of more than 8 bytes");
  unsigned long long mine = 0, got;
  memcpy(&mine, &v, sizeof v);
  got = dx_emu::warp_exchange(mine, src_lane, width);
  T r;
  memcpy(&r, &got, sizeof r);
  return r;
}
template <typename T> static inline T __shfl_down_sync(unsigned, T v, unsigned delta, int width = 32) {
  const int lane = (int)(threadIdx.x % (unsigned)width);
  return dx_emu_shfl(v, lane + (int)delta < width ? lane + (int)delta : lane, width);
}
template <typename T> static inline T __shfl_xor_sync(unsigned, T v, int mask, int width = 32) {
  const int lane = (int)(threadIdx.x % (unsigned)width);
  return dx_emu_shfl(v, (lane ^ mask) < width ? lane ^ mask : lane, width);
}

/* cos(pi x): reduced first, as CUDA's is exact at the integers. */
static inline double cospi(double x) { return cos(M_PI * fmod(x, 2.0)); }

/* ---- runtime API ---- */
typedef enum cudaError {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDevice = 101,
  cudaErrorNoDevice = 100,
  cudaErrorInvalidResourceHandle = 400,
} cudaError_t;

typedef struct dx_emu_stream *cudaStream_t;
enum cudaMemcpyKind { cudaMemcpyHostToDevice = 1, cudaMemcpyDeviceToHost = 2, cudaMemcpyDeviceToDevice = 3 };
#define cudaStreamDefault 0x00
#define cudaStreamNonBlocking 0x01

struct cudaDeviceProp {
  char name[256];
  size_t totalGlobalMem;
  int major, minor;
  int multiProcessorCount;
  int maxThreadsPerBlock;
  int warpSize;
  size_t sharedMemPerBlock;
};

cudaError_t cudaGetDeviceCount(int *count);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *prop, int device);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetLastError(void);
const char *cudaGetErrorString(cudaError_t e);
cudaError_t cudaMalloc(void **p, size_t size);
template <typename T> static inline cudaError_t cudaMalloc(T **p, size_t size) { return cudaMalloc((void **)p, size); }
cudaError_t cudaFree(void *p);
cudaError_t cudaMemGetInfo(size_t *free_b, size_t *total_b);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, cudaMemcpyKind kind, cudaStream_t s = 0);
cudaError_t cudaMemsetAsync(void *dst, int v, size_t n, cudaStream_t s = 0);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);

/* ---- the emulator's own interface (tests/emu, the libraries' emulations) ---- */
namespace dx_emu {
/* Emulated device work on this host thread: device pages open between enter and leave. */
void device_enter(void);
void device_leave(void);
/* Whether [p, p+n) lies inside one device allocation. */
bool device_range(const void *p, size_t n);
/* Whether p points into any device allocation. */
bool is_device(const void *p);
/* Whether s is a stream of this process (or the default stream, NULL). */
bool stream_valid(cudaStream_t s);
/* Report a misuse the device would fault on, and abort. */
[[noreturn]] void fatal(const char *fmt, ...);

struct launch_cfg {
  dim3 grid, block;
  size_t smem;
  cudaStream_t stream;
  const char *name;
};
/* Run body(arg) as every thread of every block of cfg (or record the
 * launch error). */
void run_grid(const launch_cfg &cfg, void (*body)(void *), void *arg);

template <typename... P> struct launcher {
  void (*kernel)(P...);
  launch_cfg cfg;
  /* The arguments convert to the kernel's parameter types here, at the
   * launch, as with <<<>>> (NULL included). */
  void operator()(P... a) const {
    struct call {
      void (*kernel)(P...);
      std::tuple<P...> args;
    } c{kernel, std::tuple<P...>(a...)};
    run_grid(cfg, [](void *p) { std::apply(((call *)p)->kernel, ((call *)p)->args); }, &c);
  }
};
template <typename... P>
static inline launcher<P...> launch(void (*k)(P...), const char *name, dim3 grid, dim3 block, size_t smem = 0,
                                    cudaStream_t stream = 0) {
  return launcher<P...>{k, launch_cfg{grid, block, smem, stream, name}};
}
} // namespace dx_emu

/* kernel<<<grid, block, smem, stream>>>(args) is rewritten by
 * tests/emu/translate.cmake into DX_EMU_LAUNCH(kernel, grid, block, smem, stream)(args). */
#define DX_EMU_LAUNCH(k, ...) dx_emu::launch(k, #k, __VA_ARGS__)

#endif
