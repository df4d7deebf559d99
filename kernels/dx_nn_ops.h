/* dx_nn_ops.h: neural-network ops for the Demucs graphs on a backend. */
#ifndef DX_NN_OPS_H
#define DX_NN_OPS_H
#include "dx_backend.h"
struct dx_nn_ops {
  const char *name;
};
#endif
