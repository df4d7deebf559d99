/* nn_sgemm.c: row-major SGEMM for the CPU ops, split over the ops' pool.
 *
 * OpenBLAS runs single-threaded here (set once, on first use): its own
 * threads wait for work by spinning on sched_yield for a while after every
 * product, which on a small host takes the cores from the pool's
 * elementwise and normalisation loops in between (a fifth of a
 * separation's CPU time went to the scheduler). Instead a large product is
 * cut into contiguous blocks of C's rows (or of its columns when there are
 * fewer of them) and each pool thread multiplies its block with one
 * single-threaded OpenBLAS call. Every part is large (SPLIT_MIN_MACS), so
 * OpenBLAS takes the same path for it as for the whole product and a row of
 * C gets the same bits whatever the split: whatever the thread count, and
 * whether another worker held the pool (tests/unit/test_nn_ops.c).
 * Threading: reentrant (concurrent single-threaded OpenBLAS calls are
 * safe); a call from inside a pool job runs unsplit in that thread. */
#include <cblas.h>
#include <pthread.h>
#include <stddef.h>

#include "nn_cpu.h"

/* A split gives every part at least this many multiply-adds (a product
 * too small for two such parts runs in one call). OpenBLAS computes small
 * products (seen up to about 100^3 multiply-adds with its Cooperlake
 * kernels) with other kernels than its general path, which sum in another
 * order: a part under that size would get other bits than the same rows in
 * the whole call. */
#define SPLIT_MIN_MACS (1LL << 21)
/* Row or column blocks are multiples of this (a few SGEMM kernel tiles). */
#define SPLIT_ALIGN 16

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
static void blas_single(void) { openblas_set_num_threads(1); }

typedef struct {
  int ta, tb, m, n, k, lda, ldb, ldc, by_rows;
  float alpha, beta;
  const float *a, *b;
  float *c;
} sgemm_ctx;

/* Blocks [i0, i1) of SPLIT_ALIGN rows (or columns) of C. */
static void sgemm_range(void *arg, long long i0, long long i1) {
  const sgemm_ctx *g = arg;
  int total = g->by_rows ? g->m : g->n;
  int lo = (int)(i0 * SPLIT_ALIGN), hi = i1 * SPLIT_ALIGN < total ? (int)(i1 * SPLIT_ALIGN) : total;
  if (hi <= lo) return;
  enum CBLAS_TRANSPOSE ta = g->ta ? CblasTrans : CblasNoTrans, tb = g->tb ? CblasTrans : CblasNoTrans;
  if (g->by_rows) { /* rows lo..hi of op(A) and of C */
    size_t off = g->ta ? (size_t)lo : (size_t)lo * (size_t)g->lda;
    cblas_sgemm(CblasRowMajor, ta, tb, hi - lo, g->n, g->k, g->alpha, g->a + off, g->lda, g->b, g->ldb, g->beta,
                g->c + (size_t)lo * (size_t)g->ldc, g->ldc);
  } else { /* columns lo..hi of op(B) and of C */
    size_t off = g->tb ? (size_t)lo * (size_t)g->ldb : (size_t)lo;
    cblas_sgemm(CblasRowMajor, ta, tb, g->m, hi - lo, g->k, g->alpha, g->a, g->lda, g->b + off, g->ldb, g->beta,
                g->c + lo, g->ldc);
  }
}

void dx_cpu_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
                  const float *b, int ldb, float beta, float *c, int ldc) {
  pthread_once(&blas_once, blas_single);
  if (m <= 0 || n <= 0) return;
  sgemm_ctx g = {trans_a, trans_b, m, n, k, lda, ldb, ldc, m >= n, alpha, beta, a, b, c};
  long long blocks = ((g.by_rows ? m : n) + SPLIT_ALIGN - 1) / SPLIT_ALIGN;
  /* a part gets at least `grain` blocks, at most one of them short */
  long long per_block = (long long)SPLIT_ALIGN * (g.by_rows ? n : m) * (k > 0 ? k : 1);
  long long grain = (SPLIT_MIN_MACS + per_block - 1) / per_block + 1;
  if (blocks < 2 * grain) {
    sgemm_range(&g, 0, blocks);
    return;
  }
  dx_cpu_parallel(blocks, grain, sgemm_range, &g);
}
