/* nn_demucs3_cpu.h: the CPU entry points of the Demucs v3 ops (nn_lstm.c,
 * nn_local_attn.c, nn_resample.c) that the CPU op table points to. Their
 * contracts are the ones of the matching dx_nn_ops members. */
#ifndef NN_DEMUCS3_CPU_H
#define NN_DEMUCS3_CPU_H

#include "dx_backend.h"
#include "dx_nn_v3.h"

dx_status dx_cpu_nn_lstm_bidir(dx_backend *be, const float *x, float *y, int n_seq, int steps, int in_dim,
                               int hidden, const dx_lstm_dir *fwd, const dx_lstm_dir *rev);
dx_status dx_cpu_nn_frames_unfold(dx_backend *be, const float *x, float *f, int batch, int channels, int length,
                                  int width, int stride, int nframes);
dx_status dx_cpu_nn_frames_fold_add(dx_backend *be, const float *f, float *y, int batch, int channels, int length,
                                    int width, int stride, int nframes, int limit);
dx_status dx_cpu_nn_local_attn(dx_backend *be, const float *x, float *y, int batch, int channels, int length,
                               int heads, int ndecay, const dx_local_attn_w *w);
dx_status dx_cpu_nn_resample(dx_backend *be, const float *x, float *y, int rows, int length, int old_sr,
                             int new_sr);

#endif
