/* dx_block_size.h: the size classes of the backends' caching allocators
 * (kernels/cpu/cpu_backend.c, kernels/cuda/cuda_backend.cu): a request is
 * rounded up to a multiple of an eighth of its highest power of two (at
 * least `min_granule`), so at most 1/8 of a block is wasted and a freed
 * block serves every later request of its class. Plain C, also included
 * from CUDA C++. */
#ifndef DX_BLOCK_SIZE_H
#define DX_BLOCK_SIZE_H

#include <stddef.h>

static inline size_t dx_block_round(size_t bytes, size_t min_granule) {
  size_t p = 1;
  while (p <= bytes / 2) p <<= 1; /* highest power of two <= bytes */
  size_t g = p / 8 < min_granule ? min_granule : p / 8;
  return (bytes + g - 1) / g * g;
}

#endif
