/* nn_cpu.h: the CPU neural-network ops (kernels/cpu/nn_*.c), gathered into
 * dx_cpu_nn_ops by nn_ops.c. Host memory; semantics in dx_nn_ops.h.
 * Threading: reentrant; matrix products and the other large loops are split
 * over the pool below (OpenBLAS itself runs single-threaded), FFT plans are
 * cached per size under a lock. */
#ifndef DX_NN_CPU_H
#define DX_NN_CPU_H

#include "dx_nn_ops.h"

/* Scratch floats a CPU op may take per block (im2col, attention scores). */
#define DX_CPU_SCRATCH_FLOATS ((size_t)4 << 20)

/* The ops' worker pool (nn_pool.c): dx_cpu_parallel runs fn over [0, n)
 * split into at most dx_cpu_threads() contiguous ranges of at least `grain`
 * items, the caller taking the first; it returns when all are done. The
 * pool has $DEMIX_CPU_THREADS threads (default: the online CPUs, at most
 * 16), started on first use. A call made while the pool runs another job
 * runs serially in the caller. fn must compute the same for a range whatever
 * the split. */
typedef void (*dx_cpu_range_fn)(void *ctx, long long i0, long long i1);
int dx_cpu_threads(void);
void dx_cpu_parallel(long long n, long long grain, dx_cpu_range_fn fn, void *ctx);

/* C = alpha op(A) op(B) + beta C, row-major (cblas_sgemm's arguments without
 * the order), large products split over the pool (nn_sgemm.c). k may be 0
 * (C = beta C). */
void dx_cpu_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
                  const float *b, int ldb, float beta, float *c, int ldc);

dx_status dx_cpu_conv1d(dx_backend *be, const float *x, const float *w, const float *bias, float *y, int batch,
                        int cin, int lin, int cout, int k, int stride, int pad, int dil);
dx_status dx_cpu_conv_tr1d(dx_backend *be, const float *x, const float *w, const float *bias, float *y, int batch,
                           int cin, int lin, int cout, int k, int stride, int crop, int lout);
dx_status dx_cpu_conv2d(dx_backend *be, const float *x, const float *w, const float *bias, float *y, int batch,
                        int cin, int h, int wd, int cout, int kh, int kw, int sh, int sw, int ph, int pw);
dx_status dx_cpu_conv_tr2d(dx_backend *be, const float *x, const float *w, const float *bias, float *y, int batch,
                           int cin, int h, int wd, int cout, int kh, int kw, int sh, int sw, int crop_h, int crop_w,
                           int hout, int wout);

dx_status dx_cpu_gemm(dx_backend *be, int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                      int lda, long long stride_a, const float *b, int ldb, long long stride_b, float beta, float *c,
                      int ldc, long long stride_c, int batch);
dx_status dx_cpu_linear(dx_backend *be, const float *x, const float *w, const float *bias, float *y, int rows, int in,
                        int out);
dx_status dx_cpu_attention(dx_backend *be, const float *q, int ldq, const float *k, int ldk, const float *v, int ldv,
                           float *out, int ldo, int lq, int lk, int heads, int dh, float scale);
dx_status dx_cpu_softmax(dx_backend *be, float *x, int rows, int cols);

dx_status dx_cpu_group_norm(dx_backend *be, const float *x, float *y, int batch, int channels, int len, int groups,
                            const float *gamma, const float *beta, float eps, int channels_last);
dx_status dx_cpu_layer_norm(dx_backend *be, const float *x, float *y, int rows, int dim, const float *gamma,
                            const float *beta, float eps);
dx_status dx_cpu_mean_std(dx_backend *be, const float *x, float *stats, int batch, long long n);
dx_status dx_cpu_standardize(dx_backend *be, const float *x, float *y, const float *stats, int batch, long long n,
                             float eps);
dx_status dx_cpu_destandardize(dx_backend *be, const float *x, float *y, const float *stats, int batch, long long n);

dx_status dx_cpu_gelu(dx_backend *be, const float *x, float *y, long long n);
dx_status dx_cpu_sigmoid(dx_backend *be, const float *x, float *y, long long n);
dx_status dx_cpu_glu(dx_backend *be, const float *x, float *y, int outer, int c, long long inner);
dx_status dx_cpu_add(dx_backend *be, const float *a, const float *b, float *y, long long n);
dx_status dx_cpu_scale_shift(dx_backend *be, const float *x, float *y, long long n, float alpha, float beta);
dx_status dx_cpu_channel_affine(dx_backend *be, const float *x, float *y, int outer, int c, long long inner,
                                const float *scale, const float *bias);
dx_status dx_cpu_add_scaled(dx_backend *be, const float *x, float *y, int outer, int c, long long inner,
                            const float *scale);
dx_status dx_cpu_permute(dx_backend *be, const float *x, float *y, int ndim, const int *shape, const int *perm);
dx_status dx_cpu_pad1d(dx_backend *be, const float *x, float *y, int rows, int lin, int left, int right,
                       dx_pad_mode mode);
dx_status dx_cpu_copy2d(dx_backend *be, const float *x, long long ldx, float *y, long long ldy, int rows,
                        long long cols);

dx_status dx_cpu_stft(dx_backend *be, const float *x, float *y, int batch, long long len, int nfft, int hop,
                      int frame0, int frames, int bins);
dx_status dx_cpu_istft(dx_backend *be, const float *z, float *y, int batch, int nfft, int hop, int bins, int frames,
                       int frame0, int frames_total, long long out0, long long out_len);

#endif
