/* dx_feature_ops.h: analysis feature ops (STFT, filterbanks, spectral
 * features) on a backend. Defined by the analysis pipeline. */
#ifndef DX_FEATURE_OPS_H
#define DX_FEATURE_OPS_H
#include "dx_backend.h"
struct dx_feature_ops {
  const char *name;
};
#endif
