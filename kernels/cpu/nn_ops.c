/* nn_ops.c: the CPU backend's neural-network op table (dx_nn_ops.h); the ops
 * live in kernels/cpu/nn_*.c. Read-only data. */
#include "nn_cpu.h"
#include "nn_demucs3_cpu.h"

const dx_nn_ops dx_cpu_nn_ops = {
    .name = "cpu",
    .conv1d = dx_cpu_conv1d,
    .conv_tr1d = dx_cpu_conv_tr1d,
    .conv2d = dx_cpu_conv2d,
    .conv_tr2d = dx_cpu_conv_tr2d,
    .gemm = dx_cpu_gemm,
    .linear = dx_cpu_linear,
    .attention = dx_cpu_attention,
    .softmax = dx_cpu_softmax,
    .group_norm = dx_cpu_group_norm,
    .layer_norm = dx_cpu_layer_norm,
    .mean_std = dx_cpu_mean_std,
    .standardize = dx_cpu_standardize,
    .destandardize = dx_cpu_destandardize,
    .gelu = dx_cpu_gelu,
    .sigmoid = dx_cpu_sigmoid,
    .glu = dx_cpu_glu,
    .add = dx_cpu_add,
    .scale_shift = dx_cpu_scale_shift,
    .channel_affine = dx_cpu_channel_affine,
    .add_scaled = dx_cpu_add_scaled,
    .permute = dx_cpu_permute,
    .pad1d = dx_cpu_pad1d,
    .copy2d = dx_cpu_copy2d,
    .stft = dx_cpu_stft,
    .istft = dx_cpu_istft,
    /* Demucs v3 ops (nn_lstm.c, nn_local_attn.c, nn_resample.c) */
    .lstm_bidir = dx_cpu_nn_lstm_bidir,
    .frames_unfold = dx_cpu_nn_frames_unfold,
    .frames_fold_add = dx_cpu_nn_frames_fold_add,
    .local_attn = dx_cpu_nn_local_attn,
    .resample = dx_cpu_nn_resample,
};
