extern "C" {
#include "dx_nn_ops.h"
extern const dx_nn_ops dx_cuda_nn_ops = {"cuda"};
}
