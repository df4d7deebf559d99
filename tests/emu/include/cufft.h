/* cufft.h of the CUDA emulator: the cuFFT calls kernels/cuda makes, on FFTW
 * (tests/emu/emu_libs.cpp). Plans check their layout against the device
 * allocations they are executed on. */
#ifndef DX_EMU_CUFFT_H
#define DX_EMU_CUFFT_H

#include "cuda_runtime.h"

typedef enum cufftResult_t {
  CUFFT_SUCCESS = 0x0,
  CUFFT_INVALID_PLAN = 0x1,
  CUFFT_ALLOC_FAILED = 0x2,
  CUFFT_INVALID_TYPE = 0x3,
  CUFFT_INVALID_VALUE = 0x4,
  CUFFT_INTERNAL_ERROR = 0x5,
  CUFFT_EXEC_FAILED = 0x6,
  CUFFT_SETUP_FAILED = 0x7,
  CUFFT_INVALID_SIZE = 0x8,
} cufftResult;

typedef enum cufftType_t { CUFFT_R2C = 0x2a, CUFFT_C2R = 0x2c } cufftType;

typedef float cufftReal;
typedef float2 cufftComplex;
typedef int cufftHandle;

cufftResult cufftCreate(cufftHandle *plan);
cufftResult cufftMakePlanMany(cufftHandle plan, int rank, int *n, int *inembed, int istride, int idist, int *onembed,
                              int ostride, int odist, cufftType type, int batch, size_t *work_size);
cufftResult cufftSetStream(cufftHandle plan, cudaStream_t stream);
cufftResult cufftExecR2C(cufftHandle plan, cufftReal *idata, cufftComplex *odata);
cufftResult cufftExecC2R(cufftHandle plan, cufftComplex *idata, cufftReal *odata);
cufftResult cufftDestroy(cufftHandle plan);

#endif
