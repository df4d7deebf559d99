/* gpu_nn_ops.c: every nn op of the CUDA backend against the CPU reference
 * (dx_nn_ops.h) on random inputs of Demucs-like shapes (odd lengths, batched
 * frequency rows, stride-4 transposed convolutions with crops, 8-head
 * attention) and at the full-size HTDemucs shapes (test_model_shapes); the
 * inverse STFT also on spectrograms that are not of a real signal, as the
 * networks output them. Outputs on the GPU
 * are poisoned with NaN before each call, so an element the op leaves
 * unwritten fails the comparison. Tolerance: relative L2 error 1e-5 for
 * every op (all are float32 paths: cuBLAS pedantic float32, cuDNN GEMM
 * algorithms with FMA math, cuFFT vs FFTW single precision); TF32 is turned
 * off for this test. A failing comparison names the op and case, the largest
 * departure (index, GPU and CPU values) and dumps both arrays. Without a GPU
 * (or a CUDA build) the program says so and exits 77 (DX_TEST_SKIPPED, which
 * the GPU tier counts as failed). Label gpu: tools/test --gpu. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dx_backend.h"
#include "dx_nn_ops.h"
#include "dx_test.h"
#include "gpu_side.h"
#include "dx_util.h"

#define TOL 1e-5

static dx_backend *cpu, *gpu;
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static float urand(void) { /* uniform in [-1, 1) */
  rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((rng_state >> 40) * (1.0 / 8388608.0)) - 1.0f;
}

/* A tensor with a host copy (the CPU side) and a device copy (the GPU side). */
typedef struct {
  size_t n;
  float *h, *d;
} tens;

static tens t_upload(const float *h, size_t n) {
  tens t = {n, malloc((n ? n : 1) * sizeof(float)), NULL};
  memcpy(t.h, h, n * sizeof(float));
  dx_status st = gpu->alloc(gpu, n * sizeof(float), (void **)&t.d);
  if (st == DX_OK) st = gpu->upload(gpu, t.d, t.h, n * sizeof(float));
  CHECK_MSG(st == DX_OK, "device copy of %zu floats: %s", n, dx_strerror(st));
  return t;
}
/* The host copy changed: send it to the device copy too. */
static void t_sync_up(tens *t) {
  dx_status st = gpu->upload(gpu, t->d, t->h, t->n * sizeof(float));
  CHECK_MSG(st == DX_OK, "upload of %zu floats: %s", t->n, dx_strerror(st));
}
/* Random input in [-scale, scale). */
static tens t_rand(size_t n, float scale) {
  float *h = malloc((n ? n : 1) * sizeof(float));
  for (size_t i = 0; i < n; i++) h[i] = scale * urand();
  tens t = t_upload(h, n);
  free(h);
  return t;
}
/* Output: NaN on both sides, so unwritten elements show. */
static tens t_out(size_t n) {
  float *h = malloc((n ? n : 1) * sizeof(float));
  for (size_t i = 0; i < n; i++) h[i] = NAN;
  tens t = t_upload(h, n);
  free(h);
  return t;
}
static void t_free(tens *t) {
  free(t->h);
  gpu->free(gpu, t->d);
  t->h = t->d = NULL;
}

/* Compare the GPU copy with the CPU copy: finite everywhere, rel L2 <= tol. */
static void t_check(const char *what, const tens *t, double tol) {
  float *g = malloc((t->n ? t->n : 1) * sizeof(float));
  dx_status st = gpu->sync(gpu);
  if (st == DX_OK) st = gpu->download(gpu, g, t->d, t->n * sizeof(float));
  CHECK_MSG(st == DX_OK, "%s: device error %s", what, dx_strerror(st));
  if (st != DX_OK) {
    free(g);
    return;
  }
  size_t bad = 0, ref_bad = 0;
  for (size_t i = 0; i < t->n; i++) {
    if (!isfinite(g[i])) bad++;
    if (!isfinite(t->h[i])) ref_bad++;
  }
  double rel = dx_test_rel_l2(g, t->h, t->n);
  CHECK_MSG(ref_bad == 0, "%s: CPU reference has %zu non-finite values", what, ref_bad);
  CHECK_MSG(bad == 0, "%s: %zu of %zu GPU values non-finite (unwritten?)", what, bad, t->n);
  CHECK_MSG(rel <= tol, "%s: rel L2 %.3g > %.3g", what, rel, tol);
  if (bad || !(rel <= tol)) {
    size_t worst = 0;
    double worst_d = -1;
    for (size_t i = 0; i < t->n; i++) {
      const double d = isfinite(g[i]) ? fabs((double)g[i] - t->h[i]) : INFINITY;
      if (d > worst_d) worst_d = d, worst = i;
    }
    fprintf(stderr, "  %s: largest departure at [%zu] of %zu: GPU %.9g, CPU %.9g\n", what, worst, t->n, g[worst],
            t->h[worst]);
    char name[160];
    snprintf(name, sizeof name, "gpu_nn_ops_%s_gpu", what);
    dx_test_dump(name, g, t->n);
    snprintf(name, sizeof name, "gpu_nn_ops_%s_cpu", what);
    dx_test_dump(name, t->h, t->n);
  } else {
    fprintf(stderr, "  %-28s rel L2 %.2e\n", what, rel);
  }
  free(g);
}

#define HAVE(op)                                                                     \
  do {                                                                               \
    if (!cpu->nn->op) SKIP("CPU op " #op " missing");                                \
    CHECK_MSG(gpu->nn->op != NULL, "CUDA op " #op " missing");                       \
    if (!gpu->nn->op) return;                                                        \
  } while (0)
/* Run an op on both backends: args given twice, CPU pointers then GPU ones. */
#define BOTH(op, cargs, gargs)                                                       \
  do {                                                                               \
    dx_status sc_ = cpu->nn->op cargs, sg_ = gpu->nn->op gargs;                      \
    CHECK_MSG(sc_ == DX_OK, #op " on CPU: %s", dx_strerror(sc_));                    \
    CHECK_MSG(sg_ == DX_OK, #op " on CUDA: %s", dx_strerror(sg_));                   \
  } while (0)

/* ---- convolutions ---- */

static void conv1d_case(const char *what, int batch, int cin, int lin, int cout, int k, int stride, int pad, int dil,
                        int with_bias) {
  int lout = (lin + 2 * pad - dil * (k - 1) - 1) / stride + 1;
  tens x = t_rand((size_t)batch * cin * lin, 1.0f), w = t_rand((size_t)cout * cin * k, 0.3f);
  tens b = t_rand((size_t)cout, 0.5f), y = t_out((size_t)batch * cout * lout);
  BOTH(conv1d, (cpu, x.h, w.h, with_bias ? b.h : NULL, y.h, batch, cin, lin, cout, k, stride, pad, dil),
       (gpu, x.d, w.d, with_bias ? b.d : NULL, y.d, batch, cin, lin, cout, k, stride, pad, dil));
  t_check(what, &y, TOL);
  t_free(&x), t_free(&w), t_free(&b), t_free(&y);
}

DX_TEST(test_conv1d) {
  HAVE(conv1d);
  conv1d_case("conv1d_enc", 1, 16, 8000, 32, 8, 4, 2, 1, 1);   /* time encoder: k8 s4 */
  conv1d_case("conv1d_dconv", 2, 24, 3000, 6, 3, 1, 2, 2, 1);  /* DConv: dilated k3 */
  conv1d_case("conv1d_1x1", 2, 32, 2000, 64, 1, 1, 0, 1, 0);   /* rewrite 1x1, no bias */
  conv1d_case("conv1d_odd", 3, 5, 4097, 7, 8, 4, 2, 1, 1);     /* odd length, odd channels */
  conv1d_case("conv1d_dil4", 2, 12, 777, 12, 3, 1, 4, 4, 1);   /* DConv dilation 4 */
}

static void conv_tr1d_case(const char *what, int batch, int cin, int lin, int cout, int k, int stride, int crop,
                           int lout) {
  tens x = t_rand((size_t)batch * cin * lin, 1.0f), w = t_rand((size_t)cin * cout * k, 0.3f);
  tens b = t_rand((size_t)cout, 0.5f), y = t_out((size_t)batch * cout * lout);
  BOTH(conv_tr1d, (cpu, x.h, w.h, b.h, y.h, batch, cin, lin, cout, k, stride, crop, lout),
       (gpu, x.d, w.d, b.d, y.d, batch, cin, lin, cout, k, stride, crop, lout));
  t_check(what, &y, TOL);
  t_free(&x), t_free(&w), t_free(&b), t_free(&y);
}

DX_TEST(test_conv_tr1d) {
  HAVE(conv_tr1d);
  conv_tr1d_case("conv_tr1d_crop", 1, 32, 2000, 16, 8, 4, 2, (1999 * 4 + 8) - 4);
  conv_tr1d_case("conv_tr1d_full", 2, 16, 1000, 8, 8, 4, 0, 999 * 4 + 8);
  conv_tr1d_case("conv_tr1d_asym", 1, 8, 500, 4, 8, 4, 3, 1990);
  conv_tr1d_case("conv_tr1d_odd", 3, 7, 1023, 5, 8, 4, 2, 1022 * 4 + 8 - 4);
}

static void conv2d_case(const char *what, int batch, int cin, int h, int wd, int cout, int kh, int kw, int sh, int sw,
                        int ph, int pw) {
  const int ho = (h + 2 * ph - kh) / sh + 1, wo = (wd + 2 * pw - kw) / sw + 1;
  tens x = t_rand((size_t)batch * cin * h * wd, 1.0f), w = t_rand((size_t)cout * cin * kh * kw, 0.3f);
  tens b = t_rand((size_t)cout, 0.5f), y = t_out((size_t)batch * cout * ho * wo);
  BOTH(conv2d, (cpu, x.h, w.h, b.h, y.h, batch, cin, h, wd, cout, kh, kw, sh, sw, ph, pw),
       (gpu, x.d, w.d, b.d, y.d, batch, cin, h, wd, cout, kh, kw, sh, sw, ph, pw));
  t_check(what, &y, TOL);
  t_free(&x), t_free(&w), t_free(&b), t_free(&y);
}

DX_TEST(test_conv2d) {
  HAVE(conv2d);
  conv2d_case("conv2d_freq_enc", 1, 8, 256, 40, 16, 8, 1, 4, 1, 2, 0);
  conv2d_case("conv2d_3x3", 2, 8, 64, 30, 12, 3, 3, 1, 1, 1, 1);
  conv2d_case("conv2d_1x1", 1, 16, 32, 40, 32, 1, 1, 1, 1, 0, 0);
  conv2d_case("conv2d_odd", 1, 6, 131, 37, 10, 8, 1, 4, 1, 2, 0); /* (131 + 4 - 8) / 4 + 1 = 32 rows */
}

static void conv_tr2d_case(const char *what, int batch, int cin, int h, int wd, int cout, int kh, int kw, int sh,
                           int sw, int ch, int cw, int ho, int wo, int with_bias) {
  tens x = t_rand((size_t)batch * cin * h * wd, 1.0f), w = t_rand((size_t)cin * cout * kh * kw, 0.3f);
  tens b = t_rand((size_t)cout, 0.5f), y = t_out((size_t)batch * cout * ho * wo);
  BOTH(conv_tr2d, (cpu, x.h, w.h, with_bias ? b.h : NULL, y.h, batch, cin, h, wd, cout, kh, kw, sh, sw, ch, cw, ho, wo),
       (gpu, x.d, w.d, with_bias ? b.d : NULL, y.d, batch, cin, h, wd, cout, kh, kw, sh, sw, ch, cw, ho, wo));
  t_check(what, &y, TOL);
  t_free(&x), t_free(&w), t_free(&b), t_free(&y);
}

DX_TEST(test_conv_tr2d) {
  HAVE(conv_tr2d);
  conv_tr2d_case("conv_tr2d_freq_dec", 1, 16, 64, 40, 8, 8, 1, 4, 1, 2, 0, 256, 40, 1);
  conv_tr2d_case("conv_tr2d_full", 2, 8, 20, 10, 4, 4, 3, 2, 2, 0, 0, 42, 21, 1);
  conv_tr2d_case("conv_tr2d_both", 1, 4, 16, 12, 6, 3, 3, 2, 2, 1, 1, 30, 22, 1);
  conv_tr2d_case("conv_tr2d_nobias", 1, 12, 33, 17, 6, 8, 1, 4, 1, 2, 0, 132, 17, 0);
}

/* ---- matrix products and attention ---- */

DX_TEST(test_gemm) {
  HAVE(gemm);
  /* batch 1 runs as one cublasSgemm, larger batches strided-batched: both, every transpose */
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++)
      for (int batch = 1; batch <= 3; batch += 2) {
        const int m = 77, n = 130, k = 96, lda = (ta ? m : k) + 5, ldb = (tb ? k : n) + 3, ldc = n + 7;
        const long long sa = (long long)lda * (ta ? k : m) + 11, sb = (long long)ldb * (tb ? n : k) + 2;
        const long long sc = (long long)ldc * m + 5;
        tens a = t_rand((size_t)sa * batch, 1.0f), b = t_rand((size_t)sb * batch, 1.0f);
        tens c = t_rand((size_t)sc * batch, 1.0f); /* beta != 0: old contents count; gaps must stay */
        char what[64];
        snprintf(what, sizeof what, "gemm_t%d%d_b%d", ta, tb, batch);
        BOTH(gemm, (cpu, ta, tb, m, n, k, 0.7f, a.h, lda, sa, b.h, ldb, sb, 0.5f, c.h, ldc, sc, batch),
             (gpu, ta, tb, m, n, k, 0.7f, a.d, lda, sa, b.d, ldb, sb, 0.5f, c.d, ldc, sc, batch));
        t_check(what, &c, TOL);
        t_free(&a), t_free(&b), t_free(&c);
      }
  /* beta 0 ignores C's old contents, NaN included */
  tens a = t_rand(64 * 48, 1.0f), b = t_rand(48 * 40, 1.0f), c = t_out(64 * 40);
  BOTH(gemm, (cpu, 0, 0, 64, 40, 48, 1.0f, a.h, 48, 0, b.h, 40, 0, 0.0f, c.h, 40, 0, 1),
       (gpu, 0, 0, 64, 40, 48, 1.0f, a.d, 48, 0, b.d, 40, 0, 0.0f, c.d, 40, 0, 1));
  t_check("gemm_beta0", &c, TOL);
  t_free(&a), t_free(&b), t_free(&c);
}

DX_TEST(test_linear) {
  HAVE(linear);
  const int rows = 500, in = 384, out = 768;
  tens x = t_rand((size_t)rows * in, 1.0f), w = t_rand((size_t)out * in, 0.05f), b = t_rand(out, 0.5f);
  tens y = t_out((size_t)rows * out), y2 = t_out((size_t)rows * out);
  BOTH(linear, (cpu, x.h, w.h, b.h, y.h, rows, in, out), (gpu, x.d, w.d, b.d, y.d, rows, in, out));
  t_check("linear_bias", &y, TOL);
  BOTH(linear, (cpu, x.h, w.h, NULL, y2.h, rows, in, out), (gpu, x.d, w.d, NULL, y2.d, rows, in, out));
  t_check("linear_nobias", &y2, TOL);
  t_free(&x), t_free(&w), t_free(&b), t_free(&y), t_free(&y2);
}

DX_TEST(test_attention) {
  HAVE(attention);
  const int lq = 300, lk = 260, heads = 8, dh = 48, width = heads * dh;
  /* q, k, v packed in one [tokens][3*width] buffer as after a fused projection */
  tens q = t_rand((size_t)lq * 3 * width, 1.0f), kv = t_rand((size_t)lk * 3 * width, 1.0f);
  tens o = t_out((size_t)lq * (width + 16));
  const float scale = 1.0f / sqrtf((float)dh);
  BOTH(attention,
       (cpu, q.h, 3 * width, kv.h + width, 3 * width, kv.h + 2 * width, 3 * width, o.h, width + 16, lq, lk, heads, dh,
        scale),
       (gpu, q.d, 3 * width, kv.d + width, 3 * width, kv.d + 2 * width, 3 * width, o.d, width + 16, lq, lk, heads, dh,
        scale));
  /* the 16 gap columns per row are not written by either: compare written columns only */
  float *g = malloc(o.n * sizeof(float));
  CHECK(gpu->download(gpu, g, o.d, o.n * sizeof(float)) == DX_OK);
  tens a = t_out((size_t)lq * width);
  float *cg = malloc(a.n * sizeof(float));
  for (int r = 0; r < lq; r++) {
    memcpy(a.h + (size_t)r * width, o.h + (size_t)r * (width + 16), width * sizeof(float));
    memcpy(cg + (size_t)r * width, g + (size_t)r * (width + 16), width * sizeof(float));
  }
  CHECK(gpu->upload(gpu, a.d, cg, a.n * sizeof(float)) == DX_OK);
  t_check("attention", &a, TOL);
  free(g), free(cg);
  t_free(&q), t_free(&kv), t_free(&o), t_free(&a);
}

DX_TEST(test_softmax) {
  HAVE(softmax);
  const int rows = 700, cols = 333;
  tens x = t_rand((size_t)rows * cols, 8.0f);
  BOTH(softmax, (cpu, x.h, rows, cols), (gpu, x.d, rows, cols));
  t_check("softmax", &x, TOL);
  t_free(&x);
  tens y = t_rand(5 * 4000, 20.0f);
  BOTH(softmax, (cpu, y.h, 5, 4000), (gpu, y.d, 5, 4000));
  t_check("softmax_long", &y, TOL);
  t_free(&y);
  tens z = t_rand(301 * 7, 8.0f); /* rows shorter than a warp */
  BOTH(softmax, (cpu, z.h, 301, 7), (gpu, z.d, 301, 7));
  t_check("softmax_short", &z, TOL);
  t_free(&z);
}

/* ---- normalisation ---- */

DX_TEST(test_group_norm) {
  HAVE(group_norm);
  struct {
    const char *what;
    int batch, channels, len, groups, affine, cl, inplace;
  } cs[] = {{"group_norm_g1", 2, 48, 3000, 1, 1, 0, 0},
            {"group_norm_g4", 2, 48, 3000, 4, 1, 0, 1},
            {"group_norm_cl", 2, 48, 700, 4, 1, 1, 0},
            {"group_norm_cl_g1", 1, 384, 1337, 1, 1, 1, 1},
            {"group_norm_batch", 257, 6, 333, 1, 1, 0, 1},
            {"group_norm_noaff", 1, 16, 100000, 1, 0, 0, 0}};
  for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
    const size_t n = (size_t)cs[i].batch * cs[i].channels * cs[i].len;
    tens x = t_rand(n, 2.0f), g = t_rand(cs[i].channels, 1.0f), b = t_rand(cs[i].channels, 1.0f);
    for (size_t j = 0; j < n; j++) x.h[j] += 0.5f; /* a non-zero mean, as real activations have */
    t_sync_up(&x);
    tens y = t_out(n);
    tens *dst = cs[i].inplace ? &x : &y;
    const float *gh = cs[i].affine ? g.h : NULL, *bh = cs[i].affine ? b.h : NULL;
    const float *gd = cs[i].affine ? g.d : NULL, *bd = cs[i].affine ? b.d : NULL;
    BOTH(group_norm, (cpu, x.h, dst->h, cs[i].batch, cs[i].channels, cs[i].len, cs[i].groups, gh, bh, 1e-5f, cs[i].cl),
         (gpu, x.d, dst->d, cs[i].batch, cs[i].channels, cs[i].len, cs[i].groups, gd, bd, 1e-5f, cs[i].cl));
    t_check(cs[i].what, dst, TOL);
    t_free(&x), t_free(&g), t_free(&b), t_free(&y);
  }
}

DX_TEST(test_layer_norm) {
  HAVE(layer_norm);
  const int rows = 1000, dim = 384;
  tens x = t_rand((size_t)rows * dim, 3.0f), g = t_rand(dim, 1.0f), b = t_rand(dim, 1.0f), y = t_out((size_t)rows * dim);
  BOTH(layer_norm, (cpu, x.h, y.h, rows, dim, g.h, b.h, 1e-5f), (gpu, x.d, y.d, rows, dim, g.d, b.d, 1e-5f));
  t_check("layer_norm", &y, TOL);
  BOTH(layer_norm, (cpu, x.h, x.h, rows, dim, NULL, NULL, 1e-5f), (gpu, x.d, x.d, rows, dim, NULL, NULL, 1e-5f));
  t_check("layer_norm_inplace", &x, TOL);
  tens z = t_rand(7 * 48, 1.0f);
  BOTH(layer_norm, (cpu, z.h, z.h, 7, 48, g.h, b.h, 1e-5f), (gpu, z.d, z.d, 7, 48, g.d, b.d, 1e-5f));
  t_check("layer_norm_small", &z, TOL);
  t_free(&x), t_free(&g), t_free(&b), t_free(&y), t_free(&z);
}

DX_TEST(test_mean_std) {
  HAVE(mean_std);
  HAVE(standardize);
  HAVE(destandardize);
  const int batch = 2;
  const long long n = 2 * 88200;
  tens x = t_rand((size_t)batch * n, 0.5f), st = t_out(2 * batch), y = t_out((size_t)batch * n);
  for (long long i = 0; i < n; i++) x.h[i] += 0.1f;
  t_sync_up(&x);
  BOTH(mean_std, (cpu, x.h, st.h, batch, n), (gpu, x.d, st.d, batch, n));
  t_check("mean_std", &st, TOL);
  /* the same stats on both sides for the elementwise pair */
  t_sync_up(&st);
  BOTH(standardize, (cpu, x.h, y.h, st.h, batch, n, 1e-5f), (gpu, x.d, y.d, st.d, batch, n, 1e-5f));
  t_check("standardize", &y, TOL);
  BOTH(destandardize, (cpu, y.h, y.h, st.h, batch, n), (gpu, y.d, y.d, st.d, batch, n));
  t_check("destandardize", &y, TOL);
  t_free(&x), t_free(&st), t_free(&y);
  /* rows shorter than a block, more rows than a finishing block */
  tens xs = t_rand(300 * 37, 1.0f), ss = t_out(2 * 300);
  BOTH(mean_std, (cpu, xs.h, ss.h, 300, 37), (gpu, xs.d, ss.d, 300, 37));
  t_check("mean_std_short", &ss, TOL);
  t_free(&xs), t_free(&ss);
}

/* ---- elementwise ---- */

DX_TEST(test_elementwise) {
  HAVE(gelu);
  HAVE(sigmoid);
  HAVE(glu);
  HAVE(add);
  HAVE(scale_shift);
  HAVE(channel_affine);
  HAVE(add_scaled);
  const long long n = 100003;
  tens x = t_rand(n, 4.0f), y = t_out(n), z = t_rand(n, 1.0f);
  BOTH(gelu, (cpu, x.h, y.h, n), (gpu, x.d, y.d, n));
  t_check("gelu", &y, TOL);
  BOTH(sigmoid, (cpu, x.h, y.h, n), (gpu, x.d, y.d, n));
  t_check("sigmoid", &y, TOL);
  BOTH(add, (cpu, x.h, z.h, y.h, n), (gpu, x.d, z.d, y.d, n));
  t_check("add", &y, TOL);
  BOTH(add, (cpu, x.h, z.h, z.h, n), (gpu, x.d, z.d, z.d, n));
  t_check("add_inplace", &z, TOL);
  BOTH(scale_shift, (cpu, x.h, y.h, n, 0.75f, -0.2f), (gpu, x.d, y.d, n, 0.75f, -0.2f));
  t_check("scale_shift", &y, TOL);
  BOTH(gelu, (cpu, x.h, x.h, n), (gpu, x.d, x.d, n));
  t_check("gelu_inplace", &x, TOL);
  t_free(&x), t_free(&y), t_free(&z);

  const int outer = 2, c = 48;
  const long long inner = 1000;
  tens g = t_rand((size_t)outer * 2 * c * inner, 3.0f), gy = t_out((size_t)outer * c * inner);
  BOTH(glu, (cpu, g.h, gy.h, outer, c, inner), (gpu, g.d, gy.d, outer, c, inner));
  t_check("glu", &gy, TOL);
  tens sc = t_rand(c, 1.0f), bi = t_rand(c, 1.0f), ay = t_out((size_t)outer * c * inner);
  BOTH(channel_affine, (cpu, gy.h, ay.h, outer, c, inner, sc.h, bi.h), (gpu, gy.d, ay.d, outer, c, inner, sc.d, bi.d));
  t_check("channel_affine", &ay, TOL);
  BOTH(channel_affine, (cpu, gy.h, ay.h, outer, c, inner, NULL, bi.h), (gpu, gy.d, ay.d, outer, c, inner, NULL, bi.d));
  t_check("channel_affine_bias", &ay, TOL);
  BOTH(channel_affine, (cpu, ay.h, ay.h, outer, c, inner, sc.h, NULL), (gpu, ay.d, ay.d, outer, c, inner, sc.d, NULL));
  t_check("channel_affine_inplace", &ay, TOL);
  BOTH(add_scaled, (cpu, gy.h, ay.h, outer, c, inner, sc.h), (gpu, gy.d, ay.d, outer, c, inner, sc.d));
  t_check("add_scaled", &ay, TOL);
  BOTH(add_scaled, (cpu, gy.h, ay.h, outer, c, inner, NULL), (gpu, gy.d, ay.d, outer, c, inner, NULL));
  t_check("add_scaled_noscale", &ay, TOL);
  t_free(&g), t_free(&gy), t_free(&sc), t_free(&bi), t_free(&ay);
  /* [tokens][dim] with a per-column scale: inner 1 */
  tens tx = t_rand(1001 * 96, 1.0f), ty = t_rand(1001 * 96, 1.0f), ts = t_rand(96, 1.0f);
  BOTH(add_scaled, (cpu, tx.h, ty.h, 1001, 96, 1, ts.h), (gpu, tx.d, ty.d, 1001, 96, 1, ts.d));
  t_check("add_scaled_inner1", &ty, TOL);
  t_free(&tx), t_free(&ty), t_free(&ts);
}

/* ---- data movement ---- */

DX_TEST(test_permute) {
  HAVE(permute);
  const int s5[5] = {2, 3, 4, 5, 6}, p5[5] = {4, 0, 3, 1, 2};
  const int s6[6] = {2, 3, 2, 5, 4, 7}, p6[6] = {5, 3, 1, 0, 4, 2};
  const int s2[2] = {48, 1001}, p2[2] = {1, 0};
  struct {
    const char *what;
    int nd;
    const int *s, *p;
  } cs[] = {{"permute_5d", 5, s5, p5}, {"permute_6d", 6, s6, p6}, {"permute_2d", 2, s2, p2}};
  for (size_t i = 0; i < 3; i++) {
    size_t n = 1;
    for (int d = 0; d < cs[i].nd; d++) n *= (size_t)cs[i].s[d];
    tens x = t_rand(n, 1.0f), y = t_out(n);
    BOTH(permute, (cpu, x.h, y.h, cs[i].nd, cs[i].s, cs[i].p), (gpu, x.d, y.d, cs[i].nd, cs[i].s, cs[i].p));
    t_check(cs[i].what, &y, 0.0); /* a permutation is exact */
    t_free(&x), t_free(&y);
  }
}

DX_TEST(test_pad_copy) {
  HAVE(pad1d);
  HAVE(copy2d);
  const int rows = 12, lin = 1000;
  tens x = t_rand((size_t)rows * lin, 1.0f);
  tens yz = t_out((size_t)rows * (lin + 37 + 501)), yr = t_out((size_t)rows * (lin + 999 + 3));
  BOTH(pad1d, (cpu, x.h, yz.h, rows, lin, 37, 501, DX_PAD_ZERO), (gpu, x.d, yz.d, rows, lin, 37, 501, DX_PAD_ZERO));
  t_check("pad1d_zero", &yz, 0.0);
  BOTH(pad1d, (cpu, x.h, yr.h, rows, lin, 999, 3, DX_PAD_REFLECT),
       (gpu, x.d, yr.d, rows, lin, 999, 3, DX_PAD_REFLECT));
  t_check("pad1d_reflect", &yr, 0.0);
  tens src = t_rand(100 * 350, 1.0f), dst = t_rand(100 * 320, 1.0f);
  BOTH(copy2d, (cpu, src.h, 350, dst.h, 320, 100, 300), (gpu, src.d, 350, dst.d, 320, 100, 300));
  t_check("copy2d", &dst, 0.0);
  t_free(&x), t_free(&yz), t_free(&yr), t_free(&src), t_free(&dst);
}

DX_TEST(test_frames) {
  HAVE(frames_unfold);
  HAVE(frames_fold_add);
  const int batch = 2, ch = 32, len = 1037, width = 200, stride = 100, nframes = 10, limit = 50;
  tens x = t_rand((size_t)batch * ch * len, 1.0f), f = t_out((size_t)batch * nframes * width * ch);
  BOTH(frames_unfold, (cpu, x.h, f.h, batch, ch, len, width, stride, nframes),
       (gpu, x.d, f.d, batch, ch, len, width, stride, nframes));
  t_check("frames_unfold", &f, 0.0);
  tens g = t_rand(f.n, 1.0f), y = t_rand(x.n, 1.0f);
  BOTH(frames_fold_add, (cpu, g.h, y.h, batch, ch, len, width, stride, nframes, limit),
       (gpu, g.d, y.d, batch, ch, len, width, stride, nframes, limit));
  t_check("frames_fold_add", &y, TOL);
  /* overlapping kept parts (limit 0): several frames add to one sample */
  BOTH(frames_fold_add, (cpu, g.h, y.h, batch, ch, len, width, stride, nframes, 0),
       (gpu, g.d, y.d, batch, ch, len, width, stride, nframes, 0));
  t_check("frames_fold_add_overlap", &y, TOL);
  t_free(&x), t_free(&f), t_free(&g), t_free(&y);
}

/* ---- spectral ---- */

DX_TEST(test_stft) {
  HAVE(stft);
  HAVE(istft);
  const int batch = 2, nfft = 4096, hop = 1024, frame0 = 2, frames = 40, bins = 2048;
  const long long len = 50000;
  tens x = t_rand((size_t)batch * len, 0.5f), z = t_out((size_t)batch * 2 * bins * frames);
  BOTH(stft, (cpu, x.h, z.h, batch, len, nfft, hop, frame0, frames, bins),
       (gpu, x.d, z.d, batch, len, nfft, hop, frame0, frames, bins));
  t_check("stft", &z, TOL);
  /* inverse of the same spectrogram as part of a 46-frame one */
  const int frames_total = 46;
  const long long out0 = 3000, out_len = 38000;
  t_sync_up(&z);
  tens y = t_out((size_t)batch * out_len);
  BOTH(istft, (cpu, z.h, y.h, batch, nfft, hop, bins, frames, frame0, frames_total, out0, out_len),
       (gpu, z.d, y.d, batch, nfft, hop, bins, frames, frame0, frames_total, out0, out_len));
  t_check("istft", &y, TOL);
  /* a small case with every bin (Nyquist included). The inverse leaves out
   * the first and last hop: there the envelope is one frame's squared
   * window (2.3e-8 at sample 1), and dividing a real signal's small edge
   * samples by it turns the FFTs' float rounding into a relative L2 of
   * 1.3e-5 on its own (FFTW float against double). The edges are checked
   * on the random spectrogram below, whose edge samples are large. */
  tens x2 = t_rand(3 * 2000, 1.0f), z2 = t_out(3 * 2 * 129 * 12), y2 = t_out(3 * 832);
  BOTH(stft, (cpu, x2.h, z2.h, 3, 2000, 256, 64, 0, 12, 129), (gpu, x2.d, z2.d, 3, 2000, 256, 64, 0, 12, 129));
  t_check("stft_allbins", &z2, TOL);
  t_sync_up(&z2);
  BOTH(istft, (cpu, z2.h, y2.h, 3, 256, 64, 129, 12, 0, 12, 64, 832),
       (gpu, z2.d, y2.d, 3, 256, 64, 129, 12, 0, 12, 64, 832));
  t_check("istft_allbins", &y2, TOL);
  /* a spectrogram that is not one of a real signal (as a network outputs):
   * the imaginary parts of DC and Nyquist must be ignored as the CPU's c2r does */
  tens zr = t_rand(3 * 2 * 129 * 12, 1.0f), yr = t_out(3 * 960);
  BOTH(istft, (cpu, zr.h, yr.h, 3, 256, 64, 129, 12, 0, 12, 0, 960), (gpu, zr.d, yr.d, 3, 256, 64, 129, 12, 0, 12, 0, 960));
  t_check("istft_random_allbins", &yr, TOL);
  t_free(&x), t_free(&z), t_free(&y), t_free(&x2), t_free(&z2), t_free(&y2), t_free(&zr), t_free(&yr);
}

/* ---- Demucs v3 ---- */

static void lstm_case(const char *what, int n_seq, int steps, int in_dim, int hidden) {
  const int G = 4 * hidden;
  const float ws = 1.0f / sqrtf((float)hidden); /* nn.LSTM's init range */
  tens x = t_rand((size_t)n_seq * steps * in_dim, 1.0f), y = t_out((size_t)n_seq * steps * 2 * hidden);
  tens w[2][4];
  dx_lstm_dir dh[2], dd[2];
  for (int d = 0; d < 2; d++) {
    w[d][0] = t_rand((size_t)G * in_dim, ws), w[d][1] = t_rand((size_t)G * hidden, ws);
    w[d][2] = t_rand(G, ws), w[d][3] = t_rand(G, ws);
    dh[d] = (dx_lstm_dir){w[d][0].h, w[d][1].h, w[d][2].h, w[d][3].h};
    dd[d] = (dx_lstm_dir){w[d][0].d, w[d][1].d, w[d][2].d, w[d][3].d};
  }
  BOTH(lstm_bidir, (cpu, x.h, y.h, n_seq, steps, in_dim, hidden, &dh[0], &dh[1]),
       (gpu, x.d, y.d, n_seq, steps, in_dim, hidden, &dd[0], &dd[1]));
  t_check(what, &y, TOL);
  t_free(&x), t_free(&y);
  for (int d = 0; d < 2; d++)
    for (int i = 0; i < 4; i++) t_free(&w[d][i]);
}

DX_TEST(test_lstm) {
  HAVE(lstm_bidir);
  lstm_case("lstm_bidir", 6, 200, 64, 32);
  lstm_case("lstm_bidir_layer2", 11, 200, 2 * 96, 96); /* second layer: input 2*hidden, 200-step windows */
  lstm_case("lstm_bidir_short", 1, 37, 20, 20);        /* a chunk shorter than a window */
}

static void local_attn_case(const char *what, int batch, int C, int T, int heads, int ndecay, int inplace) {
  const float s = 1.0f / sqrtf((float)C);
  tens x = t_rand((size_t)batch * C * T, 1.0f), y = t_out((size_t)batch * C * T);
  tens p[10];
  for (int i = 0; i < 10; i++) {
    const int rows = i >= 6 && i < 8 ? heads * (ndecay ? ndecay : 1) : C;
    p[i] = t_rand((size_t)rows * (i % 2 == 0 ? C : 1), s);
  }
  dx_local_attn_w wh = {p[0].h, p[1].h, p[2].h, p[3].h, p[4].h, p[5].h, ndecay ? p[6].h : NULL,
                        ndecay ? p[7].h : NULL, p[8].h, p[9].h};
  dx_local_attn_w wd = {p[0].d, p[1].d, p[2].d, p[3].d, p[4].d, p[5].d, ndecay ? p[6].d : NULL,
                        ndecay ? p[7].d : NULL, p[8].d, p[9].d};
  tens *dst = inplace ? &x : &y;
  BOTH(local_attn, (cpu, x.h, dst->h, batch, C, T, heads, ndecay, &wh), (gpu, x.d, dst->d, batch, C, T, heads, ndecay, &wd));
  t_check(what, dst, TOL);
  t_free(&x), t_free(&y);
  for (int i = 0; i < 10; i++) t_free(&p[i]);
}

DX_TEST(test_local_attn) {
  HAVE(local_attn);
  local_attn_case("local_attn", 2, 32, 400, 4, 4, 0);
  local_attn_case("local_attn_nodecay", 1, 16, 150, 4, 0, 1);
  local_attn_case("local_attn_long", 1, 16, 4501, 4, 4, 1); /* two query blocks on the GPU, odd length */
}

DX_TEST(test_resample) {
  HAVE(resample);
  const int rows = 4, len = 5000;
  tens x = t_rand((size_t)rows * len, 1.0f), up = t_out((size_t)rows * len * 2), down = t_out((size_t)rows * len / 2);
  BOTH(resample, (cpu, x.h, up.h, rows, len, 1, 2), (gpu, x.d, up.d, rows, len, 1, 2));
  t_check("resample_up", &up, TOL);
  BOTH(resample, (cpu, x.h, down.h, rows, len, 2, 1), (gpu, x.d, down.d, rows, len, 2, 1));
  t_check("resample_down", &down, TOL);
  t_free(&x), t_free(&up), t_free(&down);
  /* odd length: the last output sample of the downsampler uses the replicated edge */
  tens xo = t_rand(2 * 4099, 1.0f), dno = t_out(2 * (4099 / 2));
  BOTH(resample, (cpu, xo.h, dno.h, 2, 4099, 2, 1), (gpu, xo.d, dno.d, 2, 4099, 2, 1));
  t_check("resample_down_odd", &dno, TOL);
  t_free(&xo), t_free(&dno);
}

/* ---- the full-size HTDemucs shapes (7.8 s segment, 48 channels, 512-dim transformer) ---- */

DX_TEST(test_model_shapes) {
  HAVE(conv1d);
  HAVE(conv2d);
  HAVE(conv_tr1d);
  HAVE(conv_tr2d);
  HAVE(attention);
  HAVE(linear);
  HAVE(layer_norm);
  HAVE(group_norm);
  HAVE(stft);
  HAVE(istft);
  /* time encoder 0: 2 -> 48 channels, k8 s4 over the padded 343980-sample segment */
  conv1d_case("htd_tenc0", 1, 2, 343980, 48, 8, 4, 2, 1, 1);
  /* frequency encoder 0: 4 (2 channels x re/im) -> 48, [8,1] stride [4,1] pad [2,0] over 2048 x 336 */
  conv2d_case("htd_enc0", 1, 4, 2048, 336, 48, 8, 1, 4, 1, 2, 0);
  /* DConv of the frequency branch: 512 frequency rows folded into the batch, dilation 2 */
  conv1d_case("htd_dconv", 512, 48, 336, 6, 3, 1, 2, 2, 1);
  /* last decoders: 48 -> 16 (4 sources x 2 channels x re/im) and 48 -> 8 */
  conv_tr2d_case("htd_dec_last", 1, 48, 512, 336, 16, 8, 1, 4, 1, 2, 0, 2048, 336, 1);
  conv_tr1d_case("htd_tdec_last", 1, 48, 85995, 8, 8, 4, 2, 343980);
  /* cross-attention: 2688 frequency tokens on 1344 time tokens, 8 heads of 64 */
  {
    const int lq = 2688, lk = 1344, D = 512;
    tens q = t_rand((size_t)lq * D, 1.0f), kv = t_rand((size_t)lk * 2 * D, 1.0f), o = t_out((size_t)lq * D);
    BOTH(attention, (cpu, q.h, D, kv.h, 2 * D, kv.h + D, 2 * D, o.h, D, lq, lk, 8, 64, 0.125f),
         (gpu, q.d, D, kv.d, 2 * D, kv.d + D, 2 * D, o.d, D, lq, lk, 8, 64, 0.125f));
    t_check("htd_cross_attention", &o, TOL);
    t_free(&q), t_free(&kv), t_free(&o);
  }
  /* feed-forward 512 -> 2048 on the time tokens, layer norm and the channels-last GroupNorm of the frequency tokens */
  {
    const int n = 1344, D = 512, F = 2048;
    tens x = t_rand((size_t)n * D, 1.0f), w = t_rand((size_t)F * D, 0.04f), b = t_rand(F, 0.1f);
    tens y = t_out((size_t)n * F);
    BOTH(linear, (cpu, x.h, w.h, b.h, y.h, n, D, F), (gpu, x.d, w.d, b.d, y.d, n, D, F));
    t_check("htd_ffn", &y, TOL);
    t_free(&x), t_free(&w), t_free(&b), t_free(&y);
    tens t = t_rand((size_t)2688 * D, 2.0f), g = t_rand(D, 1.0f), be = t_rand(D, 1.0f), lo = t_out((size_t)2688 * D);
    BOTH(layer_norm, (cpu, t.h, lo.h, 2688, D, g.h, be.h, 1e-5f), (gpu, t.d, lo.d, 2688, D, g.d, be.d, 1e-5f));
    t_check("htd_layer_norm", &lo, TOL);
    BOTH(group_norm, (cpu, t.h, t.h, 1, D, 2688, 1, g.h, be.h, 1e-5f, 1), (gpu, t.d, t.d, 1, D, 2688, 1, g.d, be.d, 1e-5f, 1));
    t_check("htd_norm_out", &t, TOL);
    t_free(&t), t_free(&g), t_free(&be), t_free(&lo);
  }
  /* the spectrogram of a segment and its inverse (4 sources x 2 channels) */
  {
    const int nfft = 4096, hop = 1024, frames = 336, bins = 2048, rows = 8;
    const long long len = 351232, out0 = 2048 + 1536, out_len = 343980;
    tens x = t_rand((size_t)2 * len, 0.5f), z = t_out((size_t)2 * 2 * bins * frames);
    BOTH(stft, (cpu, x.h, z.h, 2, len, nfft, hop, 2, frames, bins), (gpu, x.d, z.d, 2, len, nfft, hop, 2, frames, bins));
    t_check("htd_stft", &z, TOL);
    tens zs = t_rand((size_t)rows * 2 * bins * frames, 1.0f), y = t_out((size_t)rows * out_len);
    BOTH(istft, (cpu, zs.h, y.h, rows, nfft, hop, bins, frames, 2, frames + 4, out0, out_len),
         (gpu, zs.d, y.d, rows, nfft, hop, bins, frames, 2, frames + 4, out0, out_len));
    t_check("htd_istft", &y, TOL);
    t_free(&x), t_free(&z), t_free(&zs), t_free(&y);
  }
}

/* ---- the caching allocator ---- */

/* A freed block serves later requests of its size class, else of more than
 * half its size (a long track's shapes shift from segment to segment). */
DX_TEST(test_allocator_reuse) {
  const size_t mib = (size_t)1 << 20;
  gpu->trim(gpu);
  void *p8 = NULL, *p5 = NULL, *q = NULL, *r = NULL;
  CHECK(gpu->alloc(gpu, 8 * mib, &p8) == DX_OK && gpu->alloc(gpu, 5 * mib, &p5) == DX_OK);
  gpu->free(gpu, p8);
  gpu->free(gpu, p5);
  CHECK(gpu->alloc(gpu, 5 * mib, &q) == DX_OK && q == p5); /* its own class first */
  gpu->free(gpu, q);
  CHECK(gpu->alloc(gpu, 7 * mib, &q) == DX_OK && q == p8); /* no 7 MiB block: the 8 MiB one */
  CHECK(gpu->memset0(gpu, q, 7 * mib) == DX_OK);
  gpu->free(gpu, q); /* back as an 8 MiB block */
  CHECK(gpu->alloc(gpu, 8 * mib, &q) == DX_OK && q == p8);
  CHECK(gpu->alloc(gpu, 3 * mib, &r) == DX_OK && r == p5); /* 5 MiB < 2 x 3 MiB */
  gpu->free(gpu, q);
  void *s = NULL;
  CHECK(gpu->alloc(gpu, 2 * mib, &s) == DX_OK && s != p8); /* 8 MiB is over twice 2 MiB: a new block */
  CHECK(gpu->memset0(gpu, s, 2 * mib) == DX_OK && gpu->memset0(gpu, r, 3 * mib) == DX_OK);
  gpu->free(gpu, s);
  gpu->free(gpu, r);
  CHECK(gpu->sync(gpu) == DX_OK);
  gpu->trim(gpu);
}

/* ---- bad shapes are errors, not crashes ---- */

DX_TEST(test_invalid) {
  CHECK(gpu->nn->conv1d(gpu, NULL, NULL, NULL, NULL, 1, 1, 4, 1, 8, 1, 0, 1) == DX_ERR_INVALID);
  CHECK(gpu->nn->gemm(gpu, 0, 0, 4, 4, 4, 1.0f, NULL, 2, 0, NULL, 4, 0, 0.0f, NULL, 4, 0, 1) == DX_ERR_INVALID);
  CHECK(gpu->nn->group_norm(gpu, NULL, NULL, 1, 6, 10, 4, NULL, NULL, 1e-5f, 0) == DX_ERR_INVALID);
  CHECK(gpu->nn->pad1d(gpu, NULL, NULL, 1, 4, 4, 0, DX_PAD_REFLECT) == DX_ERR_INVALID);
  CHECK(gpu->nn->stft(gpu, NULL, NULL, 1, 100, 64, 16, 0, 10, 33) == DX_ERR_INVALID);
  const int shape[2] = {2, 3}, perm[2] = {0, 0};
  CHECK(gpu->nn->permute(gpu, NULL, NULL, 2, shape, perm) == DX_ERR_INVALID);
  CHECK(gpu->sync(gpu) == DX_OK);
}

int main(int argc, char **argv) {
  static const dx_test_case cases[] = {
      DX_T(test_conv1d),    DX_T(test_conv_tr1d),  DX_T(test_conv2d),   DX_T(test_conv_tr2d), DX_T(test_gemm),
      DX_T(test_linear),    DX_T(test_attention),  DX_T(test_softmax),  DX_T(test_group_norm), DX_T(test_layer_norm),
      DX_T(test_mean_std),  DX_T(test_elementwise), DX_T(test_permute), DX_T(test_pad_copy),  DX_T(test_frames),
      DX_T(test_stft),      DX_T(test_lstm),       DX_T(test_local_attn), DX_T(test_resample), DX_T(test_model_shapes),
      DX_T(test_allocator_reuse), DX_T(test_invalid),
  };
  dx_log_init("gpu_nn_ops"); /* CUDA errors are logged (dx_cuda_report) */
  int open_rc = gpu_side_open("gpu_nn_ops", &gpu);
  if (open_rc) return open_rc;
  dx_errbuf err = {{0}};
  if (dx_backend_open("cpu", &cpu, &err) != DX_OK) {
    fprintf(stderr, "gpu_nn_ops: cannot open the CPU backend: %s\n", err.msg);
    dx_backend_close(gpu);
    return 1;
  }
  fprintf(stderr, "gpu_nn_ops: %s vs %s\n", gpu->device_desc, cpu->device_desc);
  int rc = dx_test_run(cases, sizeof cases / sizeof cases[0], argc, argv);
  dx_backend_close(gpu);
  dx_backend_close(cpu);
  return rc;
}
