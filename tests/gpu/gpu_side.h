/* gpu_side.h: which backend the GPU tier's programs test against the CPU
 * reference. Normally the CUDA backend; with DEMIX_GPU_TEST_DEVICE=cpu a
 * second CPU backend takes its place, so that the programs' own code (their
 * cases, the reference files they read, the comparisons and the reports)
 * runs in the default tier on hosts without a GPU, where every comparison
 * must then hold. That run says nothing about the CUDA code; the GPU tier
 * proper is the same programs without the variable. */
#ifndef DX_GPU_SIDE_H
#define DX_GPU_SIDE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dx_backend.h"
#include "dx_test.h"

/* The device under test: "cuda", or "cpu" as above. */
static inline const char *gpu_side_device(void) {
  const char *d = getenv("DEMIX_GPU_TEST_DEVICE");
  return d && !strcmp(d, "cpu") ? "cpu" : "cuda";
}

/* Say on stderr when the CPU stands in, so no log reads as a GPU run. */
static inline void gpu_side_note(const char *prog) {
  if (!strcmp(gpu_side_device(), "cpu"))
    fprintf(stderr, "%s: DEMIX_GPU_TEST_DEVICE=cpu: the CPU backend stands in for CUDA\n", prog);
}

/* Open the device under test into *out. Returns 0, DX_TEST_SKIPPED when it
 * is CUDA and there is no device (or no CUDA backend in this build), or 1
 * when opening fails. TF32 is turned off: the tolerances assume float32. */
static inline int gpu_side_open(const char *prog, dx_backend **out) {
  *out = NULL;
  const char *dev = gpu_side_device();
  char desc[128];
  if (!strcmp(dev, "cuda") && !dx_backend_cuda_available(desc, sizeof desc)) {
    printf("%s: skipped: no CUDA device (or a build without the CUDA backend)\n", prog);
    return DX_TEST_SKIPPED;
  }
  setenv("DEMIX_CUDA_TF32", "0", 1);
  dx_errbuf err = {{0}};
  if (dx_backend_open(dev, out, &err) != DX_OK) {
    fprintf(stderr, "%s: cannot open the %s backend: %s\n", prog, dev, err.msg);
    return 1;
  }
  gpu_side_note(prog);
  return 0;
}

#endif
