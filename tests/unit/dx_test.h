/* dx_test.h: the unit-test harness. A test program defines tests with
 * DX_TEST(name) and lists them in DX_TEST_MAIN(...); each test runs, failures
 * print file:line and the expression; the program ends with a line
 * "N passed, N failed" and exits non-zero on any failure.
 * Also: reference-kit readers and signal comparison (relative L2 error). */
#ifndef DX_TEST_H
#define DX_TEST_H

#include <math.h>
#include <stddef.h>
#include <stdio.h>

typedef void (*dx_test_fn)(void);
typedef struct {
  const char *name;
  dx_test_fn fn;
} dx_test_case;

extern int dx_test_failures; /* failures inside the current test */

#define DX_TEST(name) static void name(void)
#define DX_T(name) {#name, name}
#define DX_TEST_MAIN(...)                                                       \
  int main(int argc, char **argv) {                                             \
    static const dx_test_case cases[] = {__VA_ARGS__};                          \
    return dx_test_run(cases, sizeof cases / sizeof cases[0], argc, argv);      \
  }

int dx_test_run(const dx_test_case *cases, size_t n, int argc, char **argv);

/* Run fn(ctx) in a forked child and return the child's peak resident
 * memory (VmHWM, KiB) when fn returned 0, else -1: memory tests measure a
 * fresh process, untouched by what the test program did before. */
long dx_test_child_peak_kib(int (*fn)(void *ctx), void *ctx);

/* Exit code of a test program that cannot run on this host at all (the
 * GPU tier without a GPU): ctest reports the test as Skipped. */
#define DX_TEST_SKIPPED 77

#define CHECK(cond)                                                             \
  do {                                                                          \
    if (!(cond)) {                                                              \
      fprintf(stderr, "  %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
      dx_test_failures++;                                                       \
    }                                                                           \
  } while (0)
#define CHECK_MSG(cond, ...)                                                    \
  do {                                                                          \
    if (!(cond)) {                                                              \
      fprintf(stderr, "  %s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                                             \
      fprintf(stderr, "\n");                                                    \
      dx_test_failures++;                                                       \
    }                                                                           \
  } while (0)
#define CHECK_NEAR(a, b, tol)                                                   \
  do {                                                                          \
    double a_ = (a), b_ = (b);                                                  \
    if (!(fabs(a_ - b_) <= (tol))) {                                            \
      fprintf(stderr, "  %s:%d: %s = %.9g, expected %.9g (tol %g)\n", __FILE__, __LINE__, #a, a_, b_, (double)(tol)); \
      dx_test_failures++;                                                       \
    }                                                                           \
  } while (0)
/* Skip the rest of a test with a reason (counted as passed, reported). */
#define SKIP(...)                                                               \
  do {                                                                          \
    fprintf(stderr, "  skipped: ");                                             \
    fprintf(stderr, __VA_ARGS__);                                               \
    fprintf(stderr, "\n");                                                      \
    return;                                                                     \
  } while (0)

/* Path of a file in the reference kit: $DEMIX_REFERENCE/<rel> ($DEMIX_REFERENCE_DEFAULT, set by ctest, when unset). */
const char *dx_test_ref_path(const char *rel);
/* Path in the source tree: $DEMIX_SOURCE/<rel>. */
const char *dx_test_src_path(const char *rel);
/* Absolute path of the built `demix` command: $DEMIX_BUILD/demix (set by
 * ctest; else ./demix), for tests that run it in another folder. */
const char *dx_test_demix_path(void);
/* Read a reference tensor file stored as float16 (.f16) or float32 (.f32)
 * into a malloc'd float array; *n receives the element count. NULL on error. */
float *dx_test_read_tensor(const char *path, size_t *n);
/* ||a-b|| / ||b|| over n floats. */
double dx_test_rel_l2(const float *a, const float *b, size_t n);
/* Write n floats to $DEMIX_BUILD/tests/<name>.f32 for a look after a failure. */
void dx_test_dump(const char *name, const float *x, size_t n);

#endif
