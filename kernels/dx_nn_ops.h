/* dx_nn_ops.h: neural-network ops for the Demucs graphs on a backend.
 *
 * Conventions (every backend implements exactly these semantics; the CPU
 * ops in kernels/cpu/nn_*.c are the reference):
 * - Every tensor pointer lives in the backend's memory space (host memory
 *   for CPU, device memory for CUDA), float32, contiguous, row-major in the
 *   shape the comment gives. Shapes are plain ints; `batch` dimensions let
 *   one call cover many rows (e.g. frequency rows folded into the batch).
 * - Weights follow PyTorch layouts: Conv [Cout][Cin][k...], ConvTranspose
 *   [Cin][Cout][k...], Linear [out][in]. A NULL bias means none.
 * - Output buffers never alias inputs unless the comment says "y may be x".
 * - Ops are queued on the backend's stream; errors are returned (a bad
 *   shape gives DX_ERR_INVALID, an allocation failure DX_ERR_NOMEM, a device
 *   failure the backend's code). They never abort.
 * - Ops may use backend-private scratch (be->ctx) but keep no state between
 *   calls that changes results.
 *
 * Threading: an op runs on the calling thread's backend; the table itself is
 * read-only. Fields are appended at the END only (other graph families add
 * their ops after the HTDemucs set). */
#ifndef DX_NN_OPS_H
#define DX_NN_OPS_H

#include "dx_backend.h"
#include "dx_nn_v3.h" /* weight bundles of the Demucs v3 ops */

typedef enum { DX_PAD_ZERO = 0, DX_PAD_REFLECT = 1 } dx_pad_mode;

struct dx_nn_ops {
  const char *name;

  /* ---- convolutions ---- */

  /* y[B][Cout][Lout] = sum_{ci,j} w[co][ci][j] * x[B][ci][l*stride - pad + j*dil] + bias[co],
   * zero outside x; Lout = (Lin + 2*pad - dil*(k-1) - 1)/stride + 1 (must be >= 1). */
  dx_status (*conv1d)(dx_backend *be, const float *x, const float *w, const float *bias, float *y, int batch,
                      int cin, int lin, int cout, int k, int stride, int pad, int dil);
  /* ConvTranspose1d, w[Cin][Cout][k]. The full output has length (Lin-1)*stride + k:
   * full[co][l*stride + j] += x[ci][l] * w[ci][co][j], + bias[co]. y[B][Cout][lout]
   * receives full positions [crop, crop+lout) (crop >= 0, crop+lout <= full length).
   * PyTorch's padding p is crop = p, lout = full - 2p. */
  dx_status (*conv_tr1d)(dx_backend *be, const float *x, const float *w, const float *bias, float *y, int batch,
                         int cin, int lin, int cout, int k, int stride, int crop, int lout);
  /* y[B][Cout][Hout][Wout] = Conv2d(x[B][Cin][H][W], w[Cout][Cin][kh][kw]) with strides
   * (sh, sw), zero padding (ph, pw), dilation 1; Hout = (H + 2ph - kh)/sh + 1, same for W. */
  dx_status (*conv2d)(dx_backend *be, const float *x, const float *w, const float *bias, float *y, int batch,
                      int cin, int h, int wd, int cout, int kh, int kw, int sh, int sw, int ph, int pw);
  /* ConvTranspose2d, w[Cin][Cout][kh][kw], strides (sh, sw); full output
   * ((H-1)*sh + kh) x ((W-1)*sw + kw); y[B][Cout][hout][wout] receives full rows
   * [crop_h, crop_h+hout) and columns [crop_w, crop_w+wout). */
  dx_status (*conv_tr2d)(dx_backend *be, const float *x, const float *w, const float *bias, float *y, int batch,
                         int cin, int h, int wd, int cout, int kh, int kw, int sh, int sw, int crop_h, int crop_w,
                         int hout, int wout);

  /* ---- matrix products and attention ---- */

  /* Batched row-major SGEMM: for b < batch,
   * C_b[m][n] = alpha * op(A_b)[m][k] op(B_b)[k][n] + beta * C_b, with
   * A_b = a + b*stride_a (op(A) = A or A^T when trans_a; lda is A's row
   * stride as stored), likewise B and C. beta 0 ignores C's old contents. */
  dx_status (*gemm)(dx_backend *be, int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                    int lda, long long stride_a, const float *b, int ldb, long long stride_b, float beta, float *c,
                    int ldc, long long stride_c, int batch);
  /* y[rows][out] = x[rows][in] w[out][in]^T + bias[out] (nn.Linear). */
  dx_status (*linear)(dx_backend *be, const float *x, const float *w, const float *bias, float *y, int rows, int in,
                      int out);
  /* Multi-head scaled dot-product attention without masks. Head h of a token
   * is columns [h*dh, (h+1)*dh) of its row. q rows have stride ldq (lq rows),
   * k and v rows ldk/ldv (lk rows); out[lq][heads*dh] with row stride ldo:
   * out_h = softmax(scale * q_h k_h^T) v_h. */
  dx_status (*attention)(dx_backend *be, const float *q, int ldq, const float *k, int ldk, const float *v, int ldv,
                         float *out, int ldo, int lq, int lk, int heads, int dh, float scale);
  /* In-place softmax over the last dimension of x[rows][cols]. */
  dx_status (*softmax)(dx_backend *be, float *x, int rows, int cols);

  /* ---- normalisation ---- */

  /* GroupNorm: x[B][C][L] (or [B][L][C] when channels_last), channels split
   * into `groups` equal groups; statistics (biased variance) over each
   * group's channels and all of L per batch item; then per-channel affine
   * gamma/beta (either may be NULL). y may be x. */
  dx_status (*group_norm)(dx_backend *be, const float *x, float *y, int batch, int channels, int len, int groups,
                          const float *gamma, const float *beta, float eps, int channels_last);
  /* LayerNorm over the last dimension of x[rows][dim], affine gamma/beta (may be NULL). y may be x. */
  dx_status (*layer_norm)(dx_backend *be, const float *x, float *y, int rows, int dim, const float *gamma,
                          const float *beta, float eps);
  /* stats[2b] = mean, stats[2b+1] = unbiased (n-1) standard deviation of x[b][0..n). */
  dx_status (*mean_std)(dx_backend *be, const float *x, float *stats, int batch, long long n);
  /* y[b][i] = (x[b][i] - stats[2b]) / (eps + stats[2b+1]). y may be x. */
  dx_status (*standardize)(dx_backend *be, const float *x, float *y, const float *stats, int batch, long long n,
                           float eps);
  /* y[b][i] = x[b][i] * stats[2b+1] + stats[2b]. y may be x. */
  dx_status (*destandardize)(dx_backend *be, const float *x, float *y, const float *stats, int batch, long long n);

  /* ---- elementwise ---- */

  /* Exact GELU, 0.5 x (1 + erf(x / sqrt 2)). y may be x. */
  dx_status (*gelu)(dx_backend *be, const float *x, float *y, long long n);
  dx_status (*sigmoid)(dx_backend *be, const float *x, float *y, long long n); /* y may be x */
  /* GLU over a channel dimension: x[outer][2c][inner] -> y[outer][c][inner],
   * y = a * sigmoid(b) with a the first c channels, b the last c. */
  dx_status (*glu)(dx_backend *be, const float *x, float *y, int outer, int c, long long inner);
  /* y = a + b over n elements. y may be a or b. */
  dx_status (*add)(dx_backend *be, const float *a, const float *b, float *y, long long n);
  /* y = alpha * x + beta (host scalars) over n elements. y may be x. */
  dx_status (*scale_shift)(dx_backend *be, const float *x, float *y, long long n, float alpha, float beta);
  /* Per-channel affine on x[outer][c][inner]: y = x * scale[ch] + bias[ch]
   * (scale NULL = 1, bias NULL = 0). y may be x. */
  dx_status (*channel_affine)(dx_backend *be, const float *x, float *y, int outer, int c, long long inner,
                              const float *scale, const float *bias);
  /* Residual with a per-channel scale (LayerScale): y[o][ch][i] += scale[ch] * x[o][ch][i]
   * (scale NULL = 1). */
  dx_status (*add_scaled)(dx_backend *be, const float *x, float *y, int outer, int c, long long inner,
                          const float *scale);

  /* ---- data movement ---- */

  /* y = x permuted: x has shape[0..ndim) (ndim <= 6); y's dimension d is x's
   * dimension perm[d] (numpy transpose semantics). */
  dx_status (*permute)(dx_backend *be, const float *x, float *y, int ndim, const int *shape, const int *perm);
  /* y[r][0..left+lin+right) = x[r][0..lin) padded with zeros or by reflection
   * (PyTorch 'reflect': requires left, right < lin, or lin >= 1 with both 0). */
  dx_status (*pad1d)(dx_backend *be, const float *x, float *y, int rows, int lin, int left, int right,
                     dx_pad_mode mode);
  /* Strided 2-D copy: y[r*ldy + j] = x[r*ldx + j] for r < rows, j < cols. */
  dx_status (*copy2d)(dx_backend *be, const float *x, long long ldx, float *y, long long ldy, int rows,
                      long long cols);

  /* ---- spectral (periodic Hann window, normalized by 1/sqrt(nfft), torch conventions) ---- */

  /* STFT of already padded signals x[B][len] (no centering here): frame t
   * (t < frames) covers x[(frame0+t)*hop, +nfft) (must lie inside len).
   * y[B][2][bins][frames]: real part then imaginary part of bins [0, bins)
   * (bins <= nfft/2+1), X[f] = sum_n x[n] w[n] e^{-2 pi i f n / nfft} / sqrt(nfft). */
  dx_status (*stft)(dx_backend *be, const float *x, float *y, int batch, long long len, int nfft, int hop,
                    int frame0, int frames, int bins);
  /* Inverse (torch.istft, center handled by out0): z[B][2][bins][frames]
   * holds frames frame0..frame0+frames-1 of a spectrogram of frames_total
   * frames; other frames and bins >= bins are zero. Each frame is the
   * inverse real FFT (onesided, sqrt(nfft) normalisation; the imaginary
   * parts of the DC and Nyquist bins are ignored, as irfft does) times the window,
   * overlap-added at t*hop and divided by the summed squared window of all
   * frames_total frames (positions where that sum is < 1e-11 give 0).
   * y[B][out_len] = that signal at positions [out0, out0+out_len). */
  dx_status (*istft)(dx_backend *be, const float *z, float *y, int batch, int nfft, int hop, int bins, int frames,
                     int frame0, int frames_total, long long out0, long long out_len);

  /* ---- Demucs v3 (HDemucs, time-only Demucs): kernels/cpu/nn_lstm.c, nn_local_attn.c, nn_resample.c ---- */

  /* One bidirectional nn.LSTM layer (gate order i,f,g,o, zero initial state):
   * x[n_seq][steps][in_dim] -> y[n_seq][steps][2*hidden], forward direction in
   * channels [0,hidden), reverse in [hidden,2*hidden). */
  dx_status (*lstm_bidir)(dx_backend *be, const float *x, float *y, int n_seq, int steps, int in_dim, int hidden,
                          const dx_lstm_dir *fwd, const dx_lstm_dir *rev);
  /* Overlapping frames, channels last: x[B][C][len] -> f[B][nframes][width][C],
   * f[b][k][j][c] = x[b][c][k*stride + j], zero past len. */
  dx_status (*frames_unfold)(dx_backend *be, const float *x, float *f, int batch, int channels, int len, int width,
                             int stride, int nframes);
  /* Inverse of frames_unfold keeping each frame's middle (Demucs BLSTM):
   * y[b][c][k*stride + j] += f[b][k][j][c] for j in [limit, width-limit),
   * except frame 0 starts at j=0 and the last frame runs to j=width;
   * positions >= len are dropped. 0 <= 2*limit < width. */
  dx_status (*frames_fold_add)(dx_backend *be, const float *f, float *y, int batch, int channels, int len,
                               int width, int stride, int nframes, int limit);
  /* LocalState attention (Demucs DConv): x[B][C][T] -> y = x + proj(attn(x)),
   * heads | C, ndecay decay terms (weights w, see dx_nn_v3.h); y may be x. */
  dx_status (*local_attn)(dx_backend *be, const float *x, float *y, int batch, int channels, int len, int heads,
                          int ndecay, const dx_local_attn_w *w);
  /* julius.resample_frac(x, old_sr, new_sr) (24 zeros, rolloff 0.945, replicate
   * edges): x[rows][len] -> y[rows][len*new_sr/old_sr (floor)]; dx_resample.h. */
  dx_status (*resample)(dx_backend *be, const float *x, float *y, int rows, int len, int old_sr, int new_sr);
};

#endif
