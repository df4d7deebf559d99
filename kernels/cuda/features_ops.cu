extern "C" {
#include "dx_feature_ops.h"
extern const dx_feature_ops dx_cuda_feature_ops = {"cuda"};
}
