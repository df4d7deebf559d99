/* nn_vmath.h: exp and erf on 4 floats at a time (GCC/Clang vector
 * extensions: SSE on x86-64, NEON on arm64),
 * for the CPU ops' softmax, sigmoid/GLU and GELU loops, which otherwise
 * spend their time in scalar libm calls.
 *   dx_v4_exp: Cephes' expf (range reduction by ln 2 in two parts, degree-6
 *              polynomial), within 2 ulp of expf for x in [-86.5, 88.37];
 *              outside, the value at the nearer end (about 2.7e-38 below
 *              -86.5 rather than a denormal or 0, 2.4e38 above, never inf).
 *   dx_v4_erf: a rational approximation on [-4, 4] (erf(+-4) rounds to +-1
 *              in float), within 5e-7 of erff.
 * Header-only, pure functions. */
#ifndef DX_NN_VMATH_H
#define DX_NN_VMATH_H

#include <stdint.h>
#include <string.h>

typedef float dx_v4 __attribute__((vector_size(16)));
typedef int32_t dx_v4i __attribute__((vector_size(16)));

static inline dx_v4 dx_v4_set(float v) { return (dx_v4){v, v, v, v}; }

static inline dx_v4 dx_v4_load(const float *p) {
  dx_v4 v;
  memcpy(&v, p, sizeof v);
  return v;
}

static inline void dx_v4_store(float *p, dx_v4 v) { memcpy(p, &v, sizeof v); }

static inline dx_v4 dx_v4_select(dx_v4i mask, dx_v4 a, dx_v4 b) {
  return (dx_v4)(((dx_v4i)a & mask) | ((dx_v4i)b & ~mask));
}
static inline dx_v4 dx_v4_min(dx_v4 a, dx_v4 b) { return dx_v4_select(a < b, a, b); }
static inline dx_v4 dx_v4_max(dx_v4 a, dx_v4 b) { return dx_v4_select(a > b, a, b); }

static inline dx_v4 dx_v4_exp(dx_v4 x) {
  x = dx_v4_min(x, dx_v4_set(88.3762626647949f));
  x = dx_v4_max(x, dx_v4_set(-86.5f));
  /* n = round(x / ln 2) as floor(x * log2e + 0.5) */
  dx_v4 fx = x * dx_v4_set(1.44269504088896341f) + dx_v4_set(0.5f);
  dx_v4i n = __builtin_convertvector(fx, dx_v4i); /* truncation */
  dx_v4 fn = __builtin_convertvector(n, dx_v4);
  n += (dx_v4i)(fn > fx); /* -1 where truncation went up (negative fx) */
  fn = __builtin_convertvector(n, dx_v4);
  x = x - fn * dx_v4_set(0.693359375f);
  x = x - fn * dx_v4_set(-2.12194440e-4f);
  dx_v4 z = x * x;
  dx_v4 y = dx_v4_set(1.9875691500e-4f);
  y = y * x + dx_v4_set(1.3981999507e-3f);
  y = y * x + dx_v4_set(8.3334519073e-3f);
  y = y * x + dx_v4_set(4.1665795894e-2f);
  y = y * x + dx_v4_set(1.6666665459e-1f);
  y = y * x + dx_v4_set(5.0000001201e-1f);
  y = y * z + x + dx_v4_set(1.0f);
  dx_v4i e = (n + 126) << 23; /* 2^(n-1), n in [-124, 128] after the clamps */
  dx_v4 p2;
  memcpy(&p2, &e, sizeof p2);
  return (y * p2) * dx_v4_set(2.0f);
}

static inline dx_v4 dx_v4_erf(dx_v4 x) {
  x = dx_v4_min(dx_v4_max(x, dx_v4_set(-4.0f)), dx_v4_set(4.0f));
  dx_v4 x2 = x * x;
  dx_v4 p = x2 * dx_v4_set(-2.72614225801306e-10f) + dx_v4_set(2.77068142495902e-08f);
  p = x2 * p + dx_v4_set(-2.10102402082508e-06f);
  p = x2 * p + dx_v4_set(-5.69250639462346e-05f);
  p = x2 * p + dx_v4_set(-7.34990630326855e-04f);
  p = x2 * p + dx_v4_set(-2.95459980854025e-03f);
  p = x2 * p + dx_v4_set(-1.60960333262415e-02f);
  p = x * p;
  dx_v4 q = x2 * dx_v4_set(-1.45660718464996e-05f) + dx_v4_set(-2.13374055278905e-04f);
  q = x2 * q + dx_v4_set(-1.68282697438203e-03f);
  q = x2 * q + dx_v4_set(-7.37332916720468e-03f);
  q = x2 * q + dx_v4_set(-1.42647390514189e-02f);
  return p / q;
}

#endif
