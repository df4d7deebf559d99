/* nn_conv.c: CPU convolutions and transposed convolutions (dx_nn_ops.h).
 *
 * Convolutions are im2col + SGEMM (OpenBLAS), in blocks of output positions
 * so the column buffer stays under DX_CPU_SCRATCH_FLOATS; 1x1 stride-1
 * convolutions multiply the input directly. Transposed convolutions are
 * SGEMM (W^T x) into columns + col2im, in blocks of input positions,
 * writing only the cropped window. im2col (by input channel), col2im (by
 * output channel) and bias passes (by row) are split over the ops' pool;
 * every output element is computed by one part, as the serial loop would.
 * Threading: reentrant; scratch is per call. */
#include <stdlib.h>
#include <string.h>

#include "nn_cpu.h"

/* Output positions [p0, p1) of one batch item into col[(ci,i,j)][p - p0],
 * for input channels [c0, c1). */
static void im2col_ch(const float *x, float *col, long long ldcol, int c0, int c1, int h, int wd, int kh, int kw,
                      int sh, int sw, int ph, int pw, int dh, int dw, int wout, long long p0, long long p1) {
  for (int ci = c0; ci < c1; ci++) {
    const float *xc = x + (size_t)ci * h * wd;
    for (int i = 0; i < kh; i++) {
      for (int j = 0; j < kw; j++) {
        float *dst = col + ((size_t)(ci * kh + i) * kw + j) * ldcol;
        long long p = p0;
        while (p < p1) {
          int oh = (int)(p / wout), ow = (int)(p % wout);
          int run = wout - ow;
          if (run > p1 - p) run = (int)(p1 - p);
          int ih = oh * sh - ph + i * dh;
          float *d = dst + (p - p0);
          if (ih < 0 || ih >= h) {
            memset(d, 0, (size_t)run * sizeof *d);
          } else {
            const float *xr = xc + (size_t)ih * wd;
            int iw = ow * sw - pw + j * dw;
            if (sw == 1 && iw >= 0 && iw + run <= wd) {
              memcpy(d, xr + iw, (size_t)run * sizeof *d);
            } else {
              for (int q = 0; q < run; q++, iw += sw) d[q] = (iw >= 0 && iw < wd) ? xr[iw] : 0.0f;
            }
          }
          p += run;
        }
      }
    }
  }
}

typedef struct {
  const float *x;
  float *col;
  long long ldcol, p0, p1;
  int h, wd, kh, kw, sh, sw, ph, pw, dh, dw, wout;
} im2col_ctx;

static void im2col_range(void *p, long long c0, long long c1) {
  const im2col_ctx *e = p;
  im2col_ch(e->x, e->col, e->ldcol, (int)c0, (int)c1, e->h, e->wd, e->kh, e->kw, e->sh, e->sw, e->ph, e->pw, e->dh,
            e->dw, e->wout, e->p0, e->p1);
}

/* The whole im2col of one block, input channels split over the pool. */
static void im2col(const float *x, float *col, long long ldcol, int cin, int h, int wd, int kh, int kw, int sh, int sw,
                   int ph, int pw, int dh, int dw, int wout, long long p0, long long p1) {
  im2col_ctx e = {x, col, ldcol, p0, p1, h, wd, kh, kw, sh, sw, ph, pw, dh, dw, wout};
  long long per = (long long)kh * kw * (p1 - p0);
  dx_cpu_parallel(cin, per >= 32768 ? 1 : 32768 / (per > 0 ? per : 1), im2col_range, &e);
}

/* y[r][0:n] += bias[r % cout] (or = src + bias with a source), rows in parallel. */
typedef struct {
  float *y;
  const float *src;
  long long ldy, lds, n;
  const float *bias;
  int cout;
} rows_ctx;

static void bias_rows_range(void *p, long long r0, long long r1) {
  const rows_ctx *e = p;
  for (long long r = r0; r < r1; r++) {
    float *y = e->y + r * e->ldy, bv = e->bias ? e->bias[r % e->cout] : 0.0f;
    if (e->src) {
      const float *s = e->src + r * e->lds;
      for (long long i = 0; i < e->n; i++) y[i] = s[i] + bv;
    } else {
      for (long long i = 0; i < e->n; i++) y[i] += bv;
    }
  }
}

static void rows_bias(float *y, long long ldy, const float *src, long long lds, long long rows, long long n,
                      const float *bias, int cout) {
  rows_ctx e = {y, src, ldy, lds, n, bias, cout};
  dx_cpu_parallel(rows, n >= 32768 ? 1 : 32768 / n, bias_rows_range, &e);
}

/* General 2-D convolution with dilation; conv1d is the h = 1 case. */
static dx_status conv2d_gen(const float *x, const float *w, const float *bias, float *y, int batch, int cin, int h,
                            int wd, int cout, int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw) {
  if (batch <= 0 || cin <= 0 || h <= 0 || wd <= 0 || cout <= 0 || kh <= 0 || kw <= 0 || sh <= 0 || sw <= 0 ||
      ph < 0 || pw < 0 || dh <= 0 || dw <= 0)
    return DX_ERR_INVALID;
  long long hout = ((long long)h + 2 * ph - (long long)dh * (kh - 1) - 1) / sh + 1;
  long long wout = ((long long)wd + 2 * pw - (long long)dw * (kw - 1) - 1) / sw + 1;
  if (hout <= 0 || wout <= 0 || (long long)h + 2 * ph < (long long)dh * (kh - 1) + 1 ||
      (long long)wd + 2 * pw < (long long)dw * (kw - 1) + 1)
    return DX_ERR_INVALID;
  long long P = hout * wout;
  int K = cin * kh * kw;
  int direct = kh == 1 && kw == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0;
  /* Many small batch items (frequency rows): several items side by side in
   * one column matrix and one SGEMM, then scattered to [B][Cout][P]. */
  long long group = 1;
  if (batch > 1 && P < 4096) {
    group = (long long)(DX_CPU_SCRATCH_FLOATS / ((size_t)(K > cout ? K : cout) * (size_t)P));
    if (group > batch) group = batch;
    if (group < 1) group = 1;
  }
  if (group > 1) {
    float *col = malloc((size_t)K * (size_t)(group * P) * sizeof *col);
    float *tmp = malloc((size_t)cout * (size_t)(group * P) * sizeof *tmp);
    if (!col || !tmp) {
      free(col);
      free(tmp);
      return DX_ERR_NOMEM;
    }
    for (int b0 = 0; b0 < batch; b0 += (int)group) {
      int nb = (int)(b0 + group <= batch ? group : batch - b0);
      long long ld = nb * P;
      for (int b = 0; b < nb; b++)
        im2col(x + (size_t)(b0 + b) * cin * h * wd, col + b * P, ld, cin, h, wd, kh, kw, sh, sw, ph, pw, dh, dw,
               (int)wout, 0, P);
      dx_cpu_sgemm(0, 0, cout, (int)ld, K, 1.0f, w, K, col, (int)ld, 0.0f, tmp, (int)ld);
      for (int b = 0; b < nb; b++)
        rows_bias(y + (size_t)(b0 + b) * cout * P, P, tmp + b * P, ld, cout, P, bias, cout);
    }
    free(col);
    free(tmp);
    return DX_OK;
  }
  long long block = direct ? P : (long long)(DX_CPU_SCRATCH_FLOATS / (size_t)K);
  if (block < 64) block = 64;
  if (block > P) block = P;
  float *col = direct ? NULL : malloc((size_t)K * (size_t)block * sizeof *col);
  if (!direct && !col) return DX_ERR_NOMEM;
  for (int b = 0; b < batch; b++) {
    const float *xb = x + (size_t)b * cin * h * wd;
    float *yb = y + (size_t)b * cout * P;
    for (long long p0 = 0; p0 < P; p0 += block) {
      long long p1 = p0 + block < P ? p0 + block : P, np = p1 - p0;
      const float *B = xb + p0;
      int ldb = (int)P;
      if (!direct) {
        im2col(xb, col, np, cin, h, wd, kh, kw, sh, sw, ph, pw, dh, dw, (int)wout, p0, p1);
        B = col;
        ldb = (int)np;
      }
      dx_cpu_sgemm(0, 0, cout, (int)np, K, 1.0f, w, K, B, ldb, 0.0f, yb + p0, (int)P);
    }
    if (bias) rows_bias(yb, P, NULL, 0, cout, P, bias, cout);
  }
  free(col);
  return DX_OK;
}

dx_status dx_cpu_conv1d(dx_backend *be, const float *x, const float *w, const float *bias, float *y, int batch,
                        int cin, int lin, int cout, int k, int stride, int pad, int dil) {
  (void)be;
  return conv2d_gen(x, w, bias, y, batch, cin, 1, lin, cout, 1, k, 1, stride, 0, pad, 1, dil);
}

dx_status dx_cpu_conv2d(dx_backend *be, const float *x, const float *w, const float *bias, float *y, int batch,
                        int cin, int h, int wd, int cout, int kh, int kw, int sh, int sw, int ph, int pw) {
  (void)be;
  return conv2d_gen(x, w, bias, y, batch, cin, h, wd, cout, kh, kw, sh, sw, ph, pw, 1, 1);
}

/* col2im of one block: output channels [c0, c1) add their columns into y. */
typedef struct {
  const float *col;
  float *yb;
  long long Q, np, p0, p1;
  int wd, kh, kw, sh, sw, crop_h, crop_w, hout, wout;
} col2im_ctx;

static void col2im_range(void *arg, long long c0, long long c1) {
  const col2im_ctx *e = arg;
  int wd = e->wd, kh = e->kh, kw = e->kw, sh = e->sh, sw = e->sw, hout = e->hout, wout = e->wout;
  long long np = e->np, p0 = e->p0, p1 = e->p1;
  for (long long co = c0; co < c1; co++) {
    float *yc = e->yb + (size_t)co * e->Q;
    for (int i = 0; i < kh; i++) {
      for (int j = 0; j < kw; j++) {
        const float *c = e->col + ((size_t)(co * kh + i) * kw + j) * np;
        long long p = p0;
        while (p < p1) {
          long long ih = p / wd, iw0 = p % wd, run = wd - iw0;
          if (run > p1 - p) run = p1 - p;
          long long oh = ih * sh + i - e->crop_h;
          if (oh >= 0 && oh < hout) {
            float *yr = yc + oh * wout;
            const float *cr = c + (p - p0);
            long long ow = iw0 * sw + j - e->crop_w;
            for (long long q = 0; q < run; q++, ow += sw)
              if (ow >= 0 && ow < wout) yr[ow] += cr[q];
          }
          p += run;
        }
      }
    }
  }
}

/* Transposed 2-D convolution, cropped window of the full output. */
static dx_status conv_tr2d_gen(const float *x, const float *w, const float *bias, float *y, int batch, int cin, int h,
                               int wd, int cout, int kh, int kw, int sh, int sw, int crop_h, int crop_w, int hout,
                               int wout) {
  if (batch <= 0 || cin <= 0 || h <= 0 || wd <= 0 || cout <= 0 || kh <= 0 || kw <= 0 || sh <= 0 || sw <= 0 ||
      crop_h < 0 || crop_w < 0 || hout <= 0 || wout <= 0)
    return DX_ERR_INVALID;
  long long full_h = (long long)(h - 1) * sh + kh, full_w = (long long)(wd - 1) * sw + kw;
  if (crop_h + (long long)hout > full_h || crop_w + (long long)wout > full_w) return DX_ERR_INVALID;
  long long P = (long long)h * wd, Q = (long long)hout * wout;
  int R = cout * kh * kw; /* column rows: (co, i, j) */
  long long block = (long long)(DX_CPU_SCRATCH_FLOATS / (size_t)R);
  if (block < 64) block = 64;
  if (block > P) block = P;
  float *col = malloc((size_t)R * (size_t)block * sizeof *col);
  if (!col) return DX_ERR_NOMEM;
  for (int b = 0; b < batch; b++) {
    const float *xb = x + (size_t)b * cin * P;
    float *yb = y + (size_t)b * cout * Q;
    for (int co = 0; co < cout; co++) {
      float bv = bias ? bias[co] : 0.0f, *r = yb + (size_t)co * Q;
      for (long long q = 0; q < Q; q++) r[q] = bv;
    }
    for (long long p0 = 0; p0 < P; p0 += block) {
      long long p1 = p0 + block < P ? p0 + block : P, np = p1 - p0;
      /* col[R][np] = W^T (W stored [cin][R]) x[cin][p0:p1] */
      dx_cpu_sgemm(1, 0, R, (int)np, cin, 1.0f, w, R, xb + p0, (int)P, 0.0f, col, (int)np);
      col2im_ctx e = {col, yb, Q, np, p0, p1, wd, kh, kw, sh, sw, crop_h, crop_w, hout, wout};
      dx_cpu_parallel(cout, np * kh * kw >= 32768 ? 1 : 32768 / (np * kh * kw), col2im_range, &e);
    }
  }
  free(col);
  return DX_OK;
}

dx_status dx_cpu_conv_tr1d(dx_backend *be, const float *x, const float *w, const float *bias, float *y, int batch,
                           int cin, int lin, int cout, int k, int stride, int crop, int lout) {
  (void)be;
  return conv_tr2d_gen(x, w, bias, y, batch, cin, 1, lin, cout, 1, k, 1, stride, 0, crop, 1, lout);
}

dx_status dx_cpu_conv_tr2d(dx_backend *be, const float *x, const float *w, const float *bias, float *y, int batch,
                           int cin, int h, int wd, int cout, int kh, int kw, int sh, int sw, int crop_h, int crop_w,
                           int hout, int wout) {
  (void)be;
  return conv_tr2d_gen(x, w, bias, y, batch, cin, h, wd, cout, kh, kw, sh, sw, crop_h, crop_w, hout, wout);
}
