/* backend.c: picks a compute backend at run time (see dx_backend.h). */
#include "dx_backend.h"

#include <stdio.h>
#include <string.h>

int dx_backend_cuda_available(char *desc, size_t desc_len) {
#ifdef DEMIX_HAVE_CUDA
  return dx_cuda_device_count(desc, desc_len) > 0;
#else
  if (desc && desc_len) desc[0] = 0;
  return 0;
#endif
}

dx_status dx_backend_open(const char *device, dx_backend **out, dx_errbuf *err) {
  *out = NULL;
  if (!device || !*device) device = "auto";
  if (!strcmp(device, "cpu")) return dx_backend_cpu_create(out, err);
  if (strcmp(device, "cuda") && strcmp(device, "auto"))
    return dx_fail(err, DX_ERR_INVALID, "unknown device '%s' (cpu, cuda or auto)", device);
#ifdef DEMIX_HAVE_CUDA
  if (dx_backend_cuda_available(NULL, 0)) return dx_backend_cuda_create(out, err);
#endif
  if (!strcmp(device, "cuda"))
    return dx_fail(err, DX_ERR_NO_DEVICE, "no CUDA device: %s",
#ifdef DEMIX_HAVE_CUDA
                   "no GPU is visible"
#else
                   "this build has no CUDA backend"
#endif
    );
  return dx_backend_cpu_create(out, err);
}

void dx_backend_close(dx_backend *be) {
  if (!be) return;
  if (be->feat_state && be->feat_state_free) be->feat_state_free(be, be->feat_state);
  be->feat_state = NULL;
  be->feat_state_free = NULL;
  be->destroy(be);
}
