#include "dx_nn_ops.h"
const dx_nn_ops dx_cpu_nn_ops = {.name = "cpu"};
