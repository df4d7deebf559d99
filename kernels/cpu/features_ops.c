#include "dx_feature_ops.h"
const dx_feature_ops dx_cpu_feature_ops = {.name = "cpu"};
