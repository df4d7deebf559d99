/* cpu_backend.c: the CPU reference backend's memory functions and op tables.
 * Host memory; every "device" pointer is an ordinary pointer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dx_backend.h"

extern const dx_feature_ops dx_cpu_feature_ops; /* kernels/cpu/features*.c */
extern const dx_nn_ops dx_cpu_nn_ops;           /* kernels/cpu/nn*.c */

static dx_status cpu_alloc(dx_backend *be, size_t bytes, void **out) {
  (void)be;
  *out = malloc(bytes ? bytes : 1);
  return *out ? DX_OK : DX_ERR_NOMEM;
}
static void cpu_free(dx_backend *be, void *p) { (void)be; free(p); }
static dx_status cpu_copy(dx_backend *be, void *dst, const void *src, size_t n) {
  (void)be;
  memmove(dst, src, n);
  return DX_OK;
}
static dx_status cpu_memset0(dx_backend *be, void *dst, size_t n) {
  (void)be;
  memset(dst, 0, n);
  return DX_OK;
}
static dx_status cpu_sync(dx_backend *be) { (void)be; return DX_OK; }
static void cpu_destroy(dx_backend *be) { free(be); }

dx_status dx_backend_cpu_create(dx_backend **out, dx_errbuf *err) {
  (void)err;
  dx_backend *be = calloc(1, sizeof *be);
  if (!be) return DX_ERR_NOMEM;
  be->name = "cpu";
  be->kind = DX_DEVICE_CPU;
  snprintf(be->device_desc, sizeof be->device_desc, "cpu (%ld cores)", sysconf(_SC_NPROCESSORS_ONLN));
  be->alloc = cpu_alloc;
  be->free = cpu_free;
  be->upload = cpu_copy;
  be->download = cpu_copy;
  be->copy = cpu_copy;
  be->memset0 = cpu_memset0;
  be->sync = cpu_sync;
  be->destroy = cpu_destroy;
  be->feat = &dx_cpu_feature_ops;
  be->nn = &dx_cpu_nn_ops;
  *out = be;
  return DX_OK;
}
