/* nn_ops.cu: the CUDA backend's table of neural-network ops (dx_nn_ops.h).
 * Each entry lives in its own kernels/cuda/nn_*.cu file (declared in
 * nn_cuda.h). The table is read-only; ops run on the calling thread's
 * backend stream. */
#include "nn_cuda.h"

/* Positional initialisation (C++17 has no designated initialisers): the
 * order below is the member order of struct dx_nn_ops. The size check
 * catches members added to the struct but not here. */
static_assert(sizeof(dx_nn_ops) == sizeof(const char *) + 30 * sizeof(void (*)(void)),
              "dx_nn_ops changed: update the CUDA table in kernels/cuda/nn_ops.cu");

extern "C" const dx_nn_ops dx_cuda_nn_ops = {
    "cuda",
    /* convolutions */
    dx_cuda_nn_conv1d,
    dx_cuda_nn_conv_tr1d,
    dx_cuda_nn_conv2d,
    dx_cuda_nn_conv_tr2d,
    /* matrix products and attention */
    dx_cuda_nn_gemm,
    dx_cuda_nn_linear,
    dx_cuda_nn_attention,
    dx_cuda_nn_softmax,
    /* normalisation */
    dx_cuda_nn_group_norm,
    dx_cuda_nn_layer_norm,
    dx_cuda_nn_mean_std,
    dx_cuda_nn_standardize,
    dx_cuda_nn_destandardize,
    /* elementwise */
    dx_cuda_nn_gelu,
    dx_cuda_nn_sigmoid,
    dx_cuda_nn_glu,
    dx_cuda_nn_add,
    dx_cuda_nn_scale_shift,
    dx_cuda_nn_channel_affine,
    dx_cuda_nn_add_scaled,
    /* data movement */
    dx_cuda_nn_permute,
    dx_cuda_nn_pad1d,
    dx_cuda_nn_copy2d,
    /* spectral */
    dx_cuda_nn_stft,
    dx_cuda_nn_istft,
    /* Demucs v3 */
    dx_cuda_nn_lstm_bidir,
    dx_cuda_nn_frames_unfold,
    dx_cuda_nn_frames_fold_add,
    dx_cuda_nn_local_attn,
    dx_cuda_nn_resample,
};
