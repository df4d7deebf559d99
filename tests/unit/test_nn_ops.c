/* test_nn_ops.c: every CPU nn op (dx_nn_ops.h) on small inputs against
 * naive reference loops written here (double accumulation) or hand-computed
 * answers: convolutions and transposed convolutions with strides, padding,
 * dilation and crops, GEMM/linear/attention/softmax, the norms, elementwise
 * ops, permute/pad/copy, STFT against a direct DFT and iSTFT round trips;
 * and that split products give the same bits whoever holds the ops' pool. */
#include <stdlib.h>
#include <string.h>

#include "cpu/nn_cpu.h" /* dx_cpu_parallel: to call an op with the pool held */
#include "dx_backend.h"
#include "dx_nn_ops.h"
#include "dx_test.h"

static dx_backend *be;
static const dx_nn_ops *nn;

static unsigned rng_state = 12345;
static float frand(void) {
  rng_state = rng_state * 1103515245u + 12345u;
  return ((rng_state >> 8) & 0xffff) / 32768.0f - 1.0f;
}
static float *rnd(size_t n) {
  float *p = malloc(n * sizeof *p);
  for (size_t i = 0; i < n; i++) p[i] = frand();
  return p;
}
static double max_err(const float *a, const float *b, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
  return m;
}

static void setup(void) {
  if (!be) {
    dx_errbuf err;
    dx_status st = dx_backend_cpu_create(&be, &err);
    CHECK_MSG(st == DX_OK, "cpu backend: %s", dx_strerror(st));
    if (st == DX_OK) nn = be->nn;
  }
}

/* ---- convolutions ---- */

static void ref_conv2d(const float *x, const float *w, const float *b, float *y, int B, int ci, int H, int W, int co,
                       int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw, int Ho, int Wo) {
  for (int n = 0; n < B; n++)
    for (int o = 0; o < co; o++)
      for (int i = 0; i < Ho; i++)
        for (int j = 0; j < Wo; j++) {
          double s = b ? b[o] : 0;
          for (int c = 0; c < ci; c++)
            for (int u = 0; u < kh; u++)
              for (int v = 0; v < kw; v++) {
                int ih = i * sh - ph + u * dh, iw = j * sw - pw + v * dw;
                if (ih >= 0 && ih < H && iw >= 0 && iw < W)
                  s += (double)x[((size_t)(n * ci + c) * H + ih) * W + iw] * w[((size_t)(o * ci + c) * kh + u) * kw + v];
              }
          y[((size_t)(n * co + o) * Ho + i) * Wo + j] = (float)s;
        }
}

DX_TEST(conv1d_matches_reference) {
  setup();
  struct { int B, ci, L, co, k, s, p, d; } cs[] = {
      {1, 2, 37, 3, 8, 4, 2, 1}, {3, 4, 20, 5, 3, 1, 1, 1}, {2, 3, 25, 2, 3, 1, 2, 2}, {2, 3, 25, 2, 3, 1, 4, 4},
      {1, 6, 50, 7, 1, 1, 0, 1}, {2, 5, 9, 4, 4, 2, 1, 1},
  };
  for (size_t t = 0; t < sizeof cs / sizeof cs[0]; t++) {
    int B = cs[t].B, ci = cs[t].ci, L = cs[t].L, co = cs[t].co, k = cs[t].k, s = cs[t].s, p = cs[t].p, d = cs[t].d;
    int Lo = (L + 2 * p - d * (k - 1) - 1) / s + 1;
    float *x = rnd((size_t)B * ci * L), *w = rnd((size_t)co * ci * k), *b = rnd((size_t)co);
    float *y = malloc((size_t)B * co * Lo * sizeof *y), *r = malloc((size_t)B * co * Lo * sizeof *r);
    CHECK(nn->conv1d(be, x, w, b, y, B, ci, L, co, k, s, p, d) == DX_OK);
    ref_conv2d(x, w, b, r, B, ci, 1, L, co, 1, k, 1, s, 0, p, 1, d, 1, Lo);
    CHECK_MSG(max_err(y, r, (size_t)B * co * Lo) < 1e-5, "case %zu", t);
    free(x); free(w); free(b); free(y); free(r);
  }
  float one = 1;
  CHECK(nn->conv1d(be, &one, &one, NULL, &one, 1, 1, 1, 1, 3, 1, 0, 1) == DX_ERR_INVALID); /* kernel longer than input */
}

DX_TEST(conv2d_matches_reference) {
  setup();
  struct { int B, ci, H, W, co, kh, kw, sh, sw, ph, pw; } cs[] = {
      {1, 4, 64, 5, 3, 8, 1, 4, 1, 2, 0}, /* the frequency encoder */
      {1, 3, 8, 6, 6, 3, 3, 1, 1, 1, 1},  /* the decoder rewrite */
      {2, 5, 7, 9, 10, 1, 1, 1, 1, 0, 0}, /* 1x1 */
  };
  for (size_t t = 0; t < sizeof cs / sizeof cs[0]; t++) {
    int B = cs[t].B, ci = cs[t].ci, H = cs[t].H, W = cs[t].W, co = cs[t].co, kh = cs[t].kh, kw = cs[t].kw;
    int Ho = (H + 2 * cs[t].ph - kh) / cs[t].sh + 1, Wo = (W + 2 * cs[t].pw - kw) / cs[t].sw + 1;
    size_t ny = (size_t)B * co * Ho * Wo;
    float *x = rnd((size_t)B * ci * H * W), *w = rnd((size_t)co * ci * kh * kw), *b = rnd((size_t)co);
    float *y = malloc(ny * sizeof *y), *r = malloc(ny * sizeof *r);
    CHECK(nn->conv2d(be, x, w, b, y, B, ci, H, W, co, kh, kw, cs[t].sh, cs[t].sw, cs[t].ph, cs[t].pw) == DX_OK);
    ref_conv2d(x, w, b, r, B, ci, H, W, co, kh, kw, cs[t].sh, cs[t].sw, cs[t].ph, cs[t].pw, 1, 1, Ho, Wo);
    CHECK_MSG(max_err(y, r, ny) < 1e-5, "case %zu", t);
    free(x); free(w); free(b); free(y); free(r);
  }
}

/* full transposed conv, then the window */
static void ref_conv_tr2d(const float *x, const float *w, const float *b, float *y, int B, int ci, int H, int W, int co,
                          int kh, int kw, int sh, int sw, int ch, int cw, int Ho, int Wo) {
  int FH = (H - 1) * sh + kh, FW = (W - 1) * sw + kw;
  double *full = calloc((size_t)co * FH * FW, sizeof *full);
  for (int n = 0; n < B; n++) {
    memset(full, 0, (size_t)co * FH * FW * sizeof *full);
    for (int c = 0; c < ci; c++)
      for (int i = 0; i < H; i++)
        for (int j = 0; j < W; j++)
          for (int o = 0; o < co; o++)
            for (int u = 0; u < kh; u++)
              for (int v = 0; v < kw; v++)
                full[((size_t)o * FH + i * sh + u) * FW + j * sw + v] +=
                    (double)x[((size_t)(n * ci + c) * H + i) * W + j] * w[((size_t)(c * co + o) * kh + u) * kw + v];
    for (int o = 0; o < co; o++)
      for (int i = 0; i < Ho; i++)
        for (int j = 0; j < Wo; j++)
          y[((size_t)(n * co + o) * Ho + i) * Wo + j] = (float)(full[((size_t)o * FH + i + ch) * FW + j + cw] + (b ? b[o] : 0));
  }
  free(full);
}

DX_TEST(conv_transpose_matches_reference) {
  setup();
  /* 1-D: time decoder (k 8, s 4, window [2, 2+len)) */
  {
    int B = 2, ci = 3, L = 11, co = 4, k = 8, s = 4, crop = 2, lout = 41;
    float *x = rnd((size_t)B * ci * L), *w = rnd((size_t)ci * co * k), *b = rnd((size_t)co);
    float *y = malloc((size_t)B * co * lout * sizeof *y), *r = malloc((size_t)B * co * lout * sizeof *r);
    CHECK(nn->conv_tr1d(be, x, w, b, y, B, ci, L, co, k, s, crop, lout) == DX_OK);
    ref_conv_tr2d(x, w, b, r, B, ci, 1, L, co, 1, k, 1, s, 0, crop, 1, lout);
    CHECK(max_err(y, r, (size_t)B * co * lout) < 1e-5);
    CHECK(nn->conv_tr1d(be, x, w, b, y, B, ci, L, co, k, s, 2, 47) == DX_ERR_INVALID); /* past the full output */
    free(x); free(w); free(b); free(y); free(r);
  }
  /* 2-D: frequency decoder (k (8,1), s (4,1), rows [2, 2+4H)) */
  {
    int B = 1, ci = 5, H = 6, W = 7, co = 3, kh = 8, kw = 1, Ho = 24, Wo = 7;
    float *x = rnd((size_t)B * ci * H * W), *w = rnd((size_t)ci * co * kh * kw), *b = rnd((size_t)co);
    size_t ny = (size_t)B * co * Ho * Wo;
    float *y = malloc(ny * sizeof *y), *r = malloc(ny * sizeof *r);
    CHECK(nn->conv_tr2d(be, x, w, b, y, B, ci, H, W, co, kh, kw, 4, 1, 2, 0, Ho, Wo) == DX_OK);
    ref_conv_tr2d(x, w, b, r, B, ci, H, W, co, kh, kw, 4, 1, 2, 0, Ho, Wo);
    CHECK(max_err(y, r, ny) < 1e-5);
    free(x); free(w); free(b); free(y); free(r);
  }
  /* 2-D with a 2-D kernel and both crops */
  {
    int B = 2, ci = 2, H = 3, W = 4, co = 2, kh = 3, kw = 2, sh = 2, sw = 3, Ho = 5, Wo = 9;
    float *x = rnd((size_t)B * ci * H * W), *w = rnd((size_t)ci * co * kh * kw);
    size_t ny = (size_t)B * co * Ho * Wo;
    float *y = malloc(ny * sizeof *y), *r = malloc(ny * sizeof *r);
    CHECK(nn->conv_tr2d(be, x, w, NULL, y, B, ci, H, W, co, kh, kw, sh, sw, 1, 2, Ho, Wo) == DX_OK);
    ref_conv_tr2d(x, w, NULL, r, B, ci, H, W, co, kh, kw, sh, sw, 1, 2, Ho, Wo);
    CHECK(max_err(y, r, ny) < 1e-5);
    free(x); free(w); free(y); free(r);
  }
}

/* ---- products and attention ---- */

DX_TEST(gemm_linear_softmax) {
  setup();
  int M = 5, N = 7, K = 6, batch = 3;
  float *a = rnd((size_t)batch * M * K), *b = rnd((size_t)batch * K * N), *c = malloc((size_t)batch * M * N * sizeof *c);
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++) {
      /* with trans the stored matrix is the transpose: A stored [K][M] */
      CHECK(nn->gemm(be, ta, tb, M, N, K, 0.5f, a, ta ? M : K, (long long)M * K, b, tb ? K : N, (long long)K * N, 0.0f,
                     c, N, (long long)M * N, batch) == DX_OK);
      double e = 0;
      for (int bi = 0; bi < batch; bi++)
        for (int i = 0; i < M; i++)
          for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++) {
              float av = ta ? a[bi * M * K + k * M + i] : a[bi * M * K + i * K + k];
              float bv = tb ? b[bi * K * N + j * K + k] : b[bi * K * N + k * N + j];
              s += (double)av * bv;
            }
            e = fmax(e, fabs(0.5 * s - c[bi * M * N + i * N + j]));
          }
      CHECK_MSG(e < 1e-5, "trans %d %d: %g", ta, tb, e);
    }
  /* linear: y = x W^T + b */
  float *x = rnd(4 * 6), *w = rnd(3 * 6), *bias = rnd(3), y[12];
  CHECK(nn->linear(be, x, w, bias, y, 4, 6, 3) == DX_OK);
  for (int r = 0; r < 4; r++)
    for (int o = 0; o < 3; o++) {
      double s = bias[o];
      for (int i = 0; i < 6; i++) s += (double)x[r * 6 + i] * w[o * 6 + i];
      CHECK_NEAR(y[r * 3 + o], s, 1e-5);
    }
  /* softmax: [0, ln 2, ln 3] -> [1/6, 2/6, 3/6]; large values stay finite */
  float sm[6] = {0, (float)log(2.0), (float)log(3.0), 1000, 1000, 1000};
  CHECK(nn->softmax(be, sm, 2, 3) == DX_OK);
  CHECK_NEAR(sm[0], 1 / 6.0, 1e-6);
  CHECK_NEAR(sm[1], 2 / 6.0, 1e-6);
  CHECK_NEAR(sm[2], 3 / 6.0, 1e-6);
  CHECK_NEAR(sm[4], 1 / 3.0, 1e-6);
  free(a); free(b); free(c); free(x); free(w); free(bias);
}

DX_TEST(attention_matches_reference) {
  setup();
  int lq = 9, lk = 13, heads = 3, dh = 4, D = heads * dh;
  /* q inside a wider packed buffer (like QKV projections) */
  int ldq = 3 * D, ldk = 2 * D, ldv = 2 * D, ldo = D;
  float *q = rnd((size_t)lq * ldq), *kv = rnd((size_t)lk * ldk), *o = malloc((size_t)lq * ldo * sizeof *o);
  float scale = 0.5f;
  CHECK(nn->attention(be, q, ldq, kv, ldk, kv + D, ldv, o, ldo, lq, lk, heads, dh, scale) == DX_OK);
  double e = 0;
  for (int h = 0; h < heads; h++)
    for (int i = 0; i < lq; i++) {
      double s[13], mx = -1e30, sum = 0;
      for (int j = 0; j < lk; j++) {
        s[j] = 0;
        for (int d = 0; d < dh; d++) s[j] += (double)q[i * ldq + h * dh + d] * kv[j * ldk + h * dh + d];
        s[j] *= scale;
        mx = fmax(mx, s[j]);
      }
      for (int j = 0; j < lk; j++) sum += s[j] = exp(s[j] - mx);
      for (int d = 0; d < dh; d++) {
        double v = 0;
        for (int j = 0; j < lk; j++) v += s[j] / sum * kv[j * ldv + D + h * dh + d];
        e = fmax(e, fabs(v - o[i * ldo + h * dh + d]));
      }
    }
  CHECK_MSG(e < 1e-5, "attention error %g", e);
  free(q); free(kv); free(o);
}

/* ---- norms ---- */

DX_TEST(norms_match_reference) {
  setup();
  int B = 2, C = 6, L = 10, G = 3;
  float *x = rnd((size_t)B * C * L), *g = rnd((size_t)C), *bb = rnd((size_t)C);
  float *y = malloc((size_t)B * C * L * sizeof *y), *yl = malloc((size_t)B * C * L * sizeof *yl);
  for (int cl = 0; cl < 2; cl++) {
    CHECK(nn->group_norm(be, x, y, B, C, L, G, g, bb, 1e-5f, cl) == DX_OK);
    double e = 0;
    for (int n = 0; n < B; n++)
      for (int gi = 0; gi < G; gi++) {
        double s = 0, ss = 0;
        int cnt = 0;
        for (int c = gi * C / G; c < (gi + 1) * C / G; c++)
          for (int l = 0; l < L; l++) {
            double v = cl ? x[(size_t)n * C * L + l * C + c] : x[((size_t)n * C + c) * L + l];
            s += v;
            ss += v * v;
            cnt++;
          }
        double m = s / cnt, var = ss / cnt - m * m;
        for (int c = gi * C / G; c < (gi + 1) * C / G; c++)
          for (int l = 0; l < L; l++) {
            size_t i = cl ? (size_t)n * C * L + l * C + c : ((size_t)n * C + c) * L + l;
            e = fmax(e, fabs((x[i] - m) / sqrt(var + 1e-5) * g[c] + bb[c] - y[i]));
          }
      }
    CHECK_MSG(e < 1e-5, "group norm (channels_last %d) error %g", cl, e);
  }
  /* in place equals out of place */
  memcpy(yl, x, (size_t)B * C * L * sizeof *yl);
  CHECK(nn->group_norm(be, yl, yl, B, C, L, 1, g, bb, 1e-5f, 0) == DX_OK);
  CHECK(nn->group_norm(be, x, y, B, C, L, 1, g, bb, 1e-5f, 0) == DX_OK);
  CHECK(max_err(y, yl, (size_t)B * C * L) == 0);
  CHECK(nn->group_norm(be, x, y, B, C, L, 4, g, bb, 1e-5f, 0) == DX_ERR_INVALID); /* 6 channels, 4 groups */
  /* layer norm over rows of 6 */
  CHECK(nn->layer_norm(be, x, yl, B * L, C, g, bb, 1e-5f) == DX_OK);
  double e = 0;
  for (int r = 0; r < B * L; r++) {
    double s = 0, ss = 0;
    for (int i = 0; i < C; i++) { s += x[r * C + i]; ss += (double)x[r * C + i] * x[r * C + i]; }
    double m = s / C, var = ss / C - m * m;
    for (int i = 0; i < C; i++) e = fmax(e, fabs((x[r * C + i] - m) / sqrt(var + 1e-5) * g[i] + bb[i] - yl[r * C + i]));
  }
  CHECK_MSG(e < 1e-5, "layer norm error %g", e);
  /* mean/std (unbiased), standardise and back */
  float v[8] = {1, 2, 3, 4, 10, 10, 10, 14}, st[4], w8[8];
  CHECK(nn->mean_std(be, v, st, 2, 4) == DX_OK);
  CHECK_NEAR(st[0], 2.5, 1e-6);
  CHECK_NEAR(st[1], sqrt(5.0 / 3.0), 1e-6);
  CHECK_NEAR(st[2], 11, 1e-6);
  CHECK_NEAR(st[3], 2, 1e-6);
  CHECK(nn->standardize(be, v, w8, st, 2, 4, 1e-5f) == DX_OK);
  CHECK_NEAR(w8[7], 3 / (2 + 1e-5), 1e-6);
  CHECK(nn->destandardize(be, w8, w8, st, 2, 4) == DX_OK);
  CHECK_NEAR(w8[7], 11 + 2 * 3 / (2 + 1e-5), 1e-5);
  CHECK_NEAR(w8[0], 1, 1e-4);
  free(x); free(g); free(bb); free(y); free(yl);
}

/* ---- elementwise and data movement ---- */

/* The vector exp/erf (nn_vmath.h) against libm in double over a wide range,
 * with a length that leaves a padded tail: GELU, sigmoid, GLU, softmax. */
DX_TEST(elementwise_match_libm) {
  setup();
  enum { N = 1003 };
  float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y), *g = malloc(2 * N * sizeof *g);
  for (int i = 0; i < N; i++) x[i] = -20.0f + 40.0f * i / (N - 1);
  double worst = 0;
  CHECK(nn->gelu(be, x, y, N) == DX_OK);
  for (int i = 0; i < N; i++) {
    /* relative above 1, absolute below (1 + erf cancels for negative x, in
     * float as in the official implementation's own GELU) */
    double r = 0.5 * x[i] * (1 + erf(x[i] / sqrt(2.0)));
    worst = fmax(worst, fabs(y[i] - r) / fmax(fabs(r), 1.0));
  }
  CHECK_MSG(worst < 2e-6, "gelu worst %.3g", worst);
  worst = 0;
  CHECK(nn->sigmoid(be, x, y, N) == DX_OK);
  for (int i = 0; i < N; i++) {
    double r = 1 / (1 + exp(-(double)x[i]));
    worst = fmax(worst, fabs(y[i] - r) / r);
  }
  CHECK_MSG(worst < 2e-6, "sigmoid worst %.3g", worst);
  worst = 0;
  for (int i = 0; i < N; i++) g[i] = 1.0f + i, g[N + i] = x[i];
  CHECK(nn->glu(be, g, y, 1, 1, N) == DX_OK);
  for (int i = 0; i < N; i++) {
    double r = (1.0 + i) / (1 + exp(-(double)x[i]));
    worst = fmax(worst, fabs(y[i] - r) / r);
  }
  CHECK_MSG(worst < 2e-6, "glu worst %.3g", worst);
  /* softmax of one row: scores spread over 30 units, the largest not first */
  double sum = 0;
  for (int i = 0; i < N; i++) y[i] = 15.0f * sinf(0.37f * i) + (i == 700 ? 20.0f : 0.0f);
  memcpy(g, y, N * sizeof *y);
  CHECK(nn->softmax(be, y, 1, N) == DX_OK);
  for (int i = 0; i < N; i++) sum += exp((double)g[i] - 35.0);
  worst = 0;
  for (int i = 0; i < N; i++) {
    double r = exp((double)g[i] - 35.0) / sum;
    worst = fmax(worst, fabs(y[i] - r) / fmax(r, 1e-30));
  }
  CHECK_MSG(worst < 1e-5, "softmax worst %.3g", worst);
  free(x);
  free(y);
  free(g);
}

DX_TEST(elementwise_known_answers) {
  setup();
  float x[4] = {1, -1, 0, 3}, y[4];
  CHECK(nn->gelu(be, x, y, 4) == DX_OK);
  CHECK_NEAR(y[0], 0.8413447460685429, 1e-6);
  CHECK_NEAR(y[1], -0.15865525393145707, 1e-6);
  CHECK_NEAR(y[2], 0, 0);
  CHECK_NEAR(y[3], 2.9959502669, 1e-6);
  CHECK(nn->sigmoid(be, x, y, 4) == DX_OK);
  CHECK_NEAR(y[2], 0.5, 0);
  CHECK_NEAR(y[0], 0.7310585786300049, 1e-7);
  /* GLU over channels: x [1][2*2][2]: a = ch 0-1, b = ch 2-3 */
  float g[8] = {1, 2, 3, 4, 0, 0, 100, -100}, go[4];
  CHECK(nn->glu(be, g, go, 1, 2, 2) == DX_OK);
  CHECK_NEAR(go[0], 0.5, 1e-7);
  CHECK_NEAR(go[1], 1.0, 1e-7);
  CHECK_NEAR(go[2], 3.0, 1e-6);
  CHECK_NEAR(go[3], 0.0, 1e-6);
  float a[4] = {1, 2, 3, 4}, b[4] = {10, 20, 30, 40}, s[4];
  CHECK(nn->add(be, a, b, s, 4) == DX_OK && s[3] == 44);
  CHECK(nn->scale_shift(be, a, s, 4, 2, 1) == DX_OK && s[2] == 7);
  /* per-channel affine and LayerScale residual on [2][2][1] and [1][2][2] */
  float sc[2] = {2, 3}, bi[2] = {1, -1}, t[4];
  CHECK(nn->channel_affine(be, a, t, 2, 2, 1, sc, bi) == DX_OK);
  CHECK(t[0] == 3 && t[1] == 5 && t[2] == 7 && t[3] == 11);
  CHECK(nn->channel_affine(be, a, t, 1, 2, 2, NULL, bi) == DX_OK);
  CHECK(t[0] == 2 && t[1] == 3 && t[2] == 2 && t[3] == 3);
  float acc[4] = {0, 0, 0, 0};
  CHECK(nn->add_scaled(be, a, acc, 1, 2, 2, sc) == DX_OK);
  CHECK(acc[0] == 2 && acc[1] == 4 && acc[2] == 9 && acc[3] == 12);
  CHECK(nn->add_scaled(be, a, acc, 4, 1, 1, NULL) == DX_OK && acc[3] == 16);
}

DX_TEST(permute_pad_copy) {
  setup();
  int shp[3] = {2, 3, 4};
  float *x = rnd(24), y[24];
  int perms[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
  for (int p = 0; p < 6; p++) {
    CHECK(nn->permute(be, x, y, 3, shp, perms[p]) == DX_OK);
    int os[3] = {shp[perms[p][0]], shp[perms[p][1]], shp[perms[p][2]]}, ok = 1;
    for (int i = 0; i < os[0]; i++)
      for (int j = 0; j < os[1]; j++)
        for (int k = 0; k < os[2]; k++) {
          int idx[3];
          idx[perms[p][0]] = i;
          idx[perms[p][1]] = j;
          idx[perms[p][2]] = k;
          ok &= y[(i * os[1] + j) * os[2] + k] == x[(idx[0] * 3 + idx[1]) * 4 + idx[2]];
        }
    CHECK_MSG(ok, "perm %d", p);
  }
  int bad[3] = {0, 0, 1};
  CHECK(nn->permute(be, x, y, 3, shp, bad) == DX_ERR_INVALID);
  /* reflect and zero padding */
  float r[4] = {1, 2, 3, 4}, pr[8];
  CHECK(nn->pad1d(be, r, pr, 1, 4, 2, 2, DX_PAD_REFLECT) == DX_OK);
  float want[8] = {3, 2, 1, 2, 3, 4, 3, 2};
  CHECK(memcmp(pr, want, sizeof want) == 0);
  CHECK(nn->pad1d(be, r, pr, 1, 4, 1, 3, DX_PAD_ZERO) == DX_OK);
  float wz[8] = {0, 1, 2, 3, 4, 0, 0, 0};
  CHECK(memcmp(pr, wz, sizeof wz) == 0);
  CHECK(nn->pad1d(be, r, pr, 1, 4, 4, 0, DX_PAD_REFLECT) == DX_ERR_INVALID);
  /* strided copy: columns 1..2 of a [3][4] */
  float m[12], c[6];
  for (int i = 0; i < 12; i++) m[i] = (float)i;
  CHECK(nn->copy2d(be, m + 1, 4, c, 2, 3, 2) == DX_OK);
  CHECK(c[0] == 1 && c[1] == 2 && c[2] == 5 && c[5] == 10);
  free(x);
}

/* ---- spectral ---- */

DX_TEST(stft_matches_dft) {
  setup();
  int nfft = 64, hop = 16, frames = 5, bins = 33, B = 2;
  long long len = (long long)(frames + 1) * hop + nfft;
  float *x = rnd((size_t)B * len), *z = malloc((size_t)B * 2 * bins * frames * sizeof *z);
  CHECK(nn->stft(be, x, z, B, len, nfft, hop, 1, frames, bins) == DX_OK);
  double e = 0;
  for (int b = 0; b < B; b++)
    for (int t = 0; t < frames; t++)
      for (int f = 0; f < bins; f++) {
        double re = 0, im = 0;
        for (int n = 0; n < nfft; n++) {
          double w = 0.5 - 0.5 * cos(2 * M_PI * n / nfft), v = x[b * len + (t + 1) * hop + n] * w;
          re += v * cos(2 * M_PI * f * n / nfft);
          im -= v * sin(2 * M_PI * f * n / nfft);
        }
        re /= sqrt((double)nfft);
        im /= sqrt((double)nfft);
        e = fmax(e, fabs(re - z[((size_t)b * 2 * bins + f) * frames + t]));
        e = fmax(e, fabs(im - z[((size_t)b * 2 * bins + bins + f) * frames + t]));
      }
  CHECK_MSG(e < 1e-5, "stft error %g", e);
  CHECK(nn->stft(be, x, z, B, len, nfft, hop, 3, frames, bins) == DX_ERR_INVALID); /* runs past the signal */
  free(x);
  free(z);
}

DX_TEST(istft_inverts_stft) {
  setup();
  /* all frames of a signal: the inverse gives the signal back where the
   * window envelope is non-zero (everywhere but the very first sample);
   * compared away from the edges, where the envelope is tiny and amplifies
   * rounding */
  int nfft = 64, hop = 16;
  long long len = 16 * hop + nfft - hop; /* frames 16 */
  int frames = (int)((len - nfft) / hop + 1), bins = nfft / 2 + 1;
  float *x = rnd((size_t)len), *z = malloc((size_t)2 * bins * frames * sizeof *z), *y = malloc((size_t)len * sizeof *y);
  CHECK(nn->stft(be, x, z, 1, len, nfft, hop, 0, frames, bins) == DX_OK);
  CHECK(nn->istft(be, z, y, 1, nfft, hop, bins, frames, 0, frames, 1, len - 1) == DX_OK);
  CHECK_MSG(max_err(y + hop, x + 1 + hop, (size_t)(len - 1 - 2 * hop)) < 1e-5, "round trip error %g",
            max_err(y + hop, x + 1 + hop, (size_t)(len - 1 - 2 * hop)));
  /* with the Nyquist bin dropped and zero frames around, as Demucs's _ispec does:
   * frames 2..2+frames of frames+4, same interior samples */
  int inner = frames - 4;
  float *zi = malloc((size_t)2 * (bins - 1) * inner * sizeof *zi), *y2 = malloc((size_t)len * sizeof *y2);
  /* frames 2..2+inner of the original, Nyquist bin forced to zero in a copy */
  for (int p = 0; p < 2; p++)
    for (int f = 0; f < bins - 1; f++)
      for (int t = 0; t < inner; t++) zi[((size_t)p * (bins - 1) + f) * inner + t] = z[((size_t)p * bins + f) * frames + t + 2];
  for (int p = 0; p < 2; p++)
    for (int t = 0; t < frames; t++) z[((size_t)p * bins + bins - 1) * frames + t] = 0;
  CHECK(nn->istft(be, zi, y2, 1, nfft, hop, bins - 1, inner, 2, frames, 0, len) == DX_OK);
  CHECK(nn->istft(be, z, y, 1, nfft, hop, bins, frames, 0, frames, 0, len) == DX_OK);
  /* samples that frames 0, 1 (ending at hop + nfft) and frames >= inner + 2
   * do not reach: both inverses see the same frames there */
  double e = 0;
  for (long long i = hop + nfft; i < (long long)(inner + 2) * hop; i++) e = fmax(e, fabs((double)y2[i] - y[i]));
  CHECK_MSG(e < 1e-5, "partial-frame inverse error %g", e);
  CHECK(nn->istft(be, z, y, 1, nfft, hop, bins, frames, 0, frames, 1, len) == DX_ERR_INVALID);
  free(x); free(z); free(y); free(zi); free(y2);
}

/* ---- results independent of the pool ---- */

typedef struct {
  int ta, tb, m, n, k;
  float beta;
  const float *a, *b;
  float *c;
  dx_status st;
} held_gemm;

/* Part 0 of a two-part pool job runs the product, so the pool is busy and
 * the product's own split runs serially in this thread. */
static void gemm_pool_held(void *p, long long i0, long long i1) {
  held_gemm *g = p;
  (void)i1;
  if (i0 == 0)
    g->st = nn->gemm(be, g->ta, g->tb, g->m, g->n, g->k, 0.7f, g->a, g->ta ? g->m : g->k, 0, g->b, g->tb ? g->k : g->n,
                     0, g->beta, g->c, g->n, 0, 1);
}

DX_TEST(products_same_bits_with_pool_free_or_busy) {
  setup();
  /* {m, n, k, trans_a, trans_b, beta 0.5}: the first six, split in two, once
   * made blocks under OpenBLAS's small-matrix size, which sum in another
   * order; the rest are Demucs transformer, attention and conv shapes */
  const int shapes[][6] = {{12, 300, 372, 1, 1, 1},    {218, 390, 23, 1, 1, 1},   {193, 149, 65, 0, 0, 0},
                           {53, 390, 64, 0, 0, 1},     {33, 166, 339, 1, 0, 0},   {988, 11, 101, 1, 0, 1},
                           {2688, 512, 512, 0, 1, 0},  {2688, 2048, 512, 0, 1, 0}, {1560, 2688, 64, 0, 1, 0},
                           {384, 2688, 48, 0, 1, 0},   {48, 65536, 48, 0, 0, 1},  {1000, 300, 700, 1, 0, 1}};
  for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
    const int *s = shapes[i];
    int m = s[0], n = s[1], k = s[2];
    float *a = rnd((size_t)m * k), *b = rnd((size_t)k * n), *c0 = rnd((size_t)m * n);
    float *c1 = malloc((size_t)m * n * sizeof *c1), *c2 = malloc((size_t)m * n * sizeof *c2);
    memcpy(c1, c0, (size_t)m * n * sizeof *c1);
    memcpy(c2, c0, (size_t)m * n * sizeof *c2);
    float beta = s[5] ? 0.5f : 0.0f;
    CHECK(nn->gemm(be, s[3], s[4], m, n, k, 0.7f, a, s[3] ? m : k, 0, b, s[4] ? k : n, 0, beta, c1, n, 0, 1) == DX_OK);
    held_gemm g = {s[3], s[4], m, n, k, beta, a, b, c2, DX_ERR_INTERNAL};
    dx_cpu_parallel(2, 1, gemm_pool_held, &g);
    CHECK(g.st == DX_OK);
    size_t diff = 0;
    for (size_t j = 0; j < (size_t)m * n; j++) diff += c1[j] != c2[j];
    CHECK_MSG(diff == 0, "%dx%dx%d trans %d %d: %zu of %zu elements differ", m, n, k, s[3], s[4], diff,
              (size_t)m * n);
    free(a); free(b); free(c0); free(c1); free(c2);
  }
}

static void teardown(void) {
  if (be) be->destroy(be);
  be = NULL;
}
DX_TEST(done) { teardown(); }

DX_TEST_MAIN(DX_T(conv1d_matches_reference), DX_T(conv2d_matches_reference), DX_T(conv_transpose_matches_reference),
             DX_T(gemm_linear_softmax), DX_T(attention_matches_reference), DX_T(norms_match_reference),
             DX_T(elementwise_match_libm), DX_T(elementwise_known_answers), DX_T(permute_pad_copy), DX_T(stft_matches_dft), DX_T(istft_inverts_stft),
             DX_T(products_same_bits_with_pool_free_or_busy), DX_T(done))
