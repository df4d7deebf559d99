/* nn_vmath.h: exp and erf on DX_VF_LANES (8) floats at a time (GCC/Clang
 * vector extensions: two SSE or NEON registers in a baseline build, one AVX
 * register in the x86-64-v3 clones of DX_HOT functions),
 * for the CPU ops' softmax, sigmoid/GLU and GELU loops, which otherwise
 * spend their time in scalar libm calls.
 *   dx_vf_exp: Cephes' expf (range reduction by ln 2 in two parts, degree-6
 *              polynomial), within 2 ulp of expf for x in [-86.5, 88.37];
 *              outside, the value at the nearer end (about 2.7e-38 below
 *              -86.5 rather than a denormal or 0, 2.4e38 above, never inf).
 *   dx_vf_erf: a rational approximation on [-4, 4] (erf(+-4) rounds to +-1
 *              in float), within 5e-7 of erff.
 * Header-only, pure functions, always inlined (so no vector crosses a call
 * and the baseline build's ABI note about wide vectors does not apply). */
#ifndef DX_NN_VMATH_H
#define DX_NN_VMATH_H

#include <stdint.h>
#include <string.h>

#include "dx_hot.h"

#define DX_VF_LANES 8
#define DX_VF_INLINE static inline __attribute__((always_inline))

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"

typedef float dx_vf __attribute__((vector_size(4 * DX_VF_LANES)));
typedef int32_t dx_vfi __attribute__((vector_size(4 * DX_VF_LANES)));

DX_VF_INLINE dx_vf dx_vf_set(float v) { return (dx_vf){0} + v; }

DX_VF_INLINE dx_vf dx_vf_load(const float *p) {
  dx_vf v;
  memcpy(&v, p, sizeof v);
  return v;
}

DX_VF_INLINE void dx_vf_store(float *p, dx_vf v) { memcpy(p, &v, sizeof v); }

DX_VF_INLINE dx_vf dx_vf_select(dx_vfi mask, dx_vf a, dx_vf b) {
  return (dx_vf)(((dx_vfi)a & mask) | ((dx_vfi)b & ~mask));
}
DX_VF_INLINE dx_vf dx_vf_min(dx_vf a, dx_vf b) { return dx_vf_select(a < b, a, b); }
/* Whether any lane of a comparison's mask is set. */
DX_VF_INLINE int dx_vf_any(dx_vfi m) {
  uint64_t w[DX_VF_LANES / 2];
  memcpy(w, &m, sizeof w);
  uint64_t o = 0;
  for (int i = 0; i < DX_VF_LANES / 2; i++) o |= w[i];
  return o != 0;
}
DX_VF_INLINE dx_vf dx_vf_max(dx_vf a, dx_vf b) { return dx_vf_select(a > b, a, b); }

DX_VF_INLINE dx_vf dx_vf_exp(dx_vf x) {
  x = dx_vf_min(x, dx_vf_set(88.3762626647949f));
  x = dx_vf_max(x, dx_vf_set(-86.5f));
  /* n = round(x / ln 2) as floor(x * log2e + 0.5) */
  dx_vf fx = x * dx_vf_set(1.44269504088896341f) + dx_vf_set(0.5f);
  dx_vfi n = __builtin_convertvector(fx, dx_vfi); /* truncation */
  dx_vf fn = __builtin_convertvector(n, dx_vf);
  n += (dx_vfi)(fn > fx); /* -1 where truncation went up (negative fx) */
  fn = __builtin_convertvector(n, dx_vf);
  x = x - fn * dx_vf_set(0.693359375f);
  x = x - fn * dx_vf_set(-2.12194440e-4f);
  dx_vf z = x * x;
  dx_vf y = dx_vf_set(1.9875691500e-4f);
  y = y * x + dx_vf_set(1.3981999507e-3f);
  y = y * x + dx_vf_set(8.3334519073e-3f);
  y = y * x + dx_vf_set(4.1665795894e-2f);
  y = y * x + dx_vf_set(1.6666665459e-1f);
  y = y * x + dx_vf_set(5.0000001201e-1f);
  y = y * z + x + dx_vf_set(1.0f);
  dx_vfi e = (n + 126) << 23; /* 2^(n-1), n in [-124, 128] after the clamps */
  dx_vf p2;
  memcpy(&p2, &e, sizeof p2);
  return (y * p2) * dx_vf_set(2.0f);
}

DX_VF_INLINE dx_vf dx_vf_erf(dx_vf x) {
  x = dx_vf_min(dx_vf_max(x, dx_vf_set(-4.0f)), dx_vf_set(4.0f));
  dx_vf x2 = x * x;
  dx_vf p = x2 * dx_vf_set(-2.72614225801306e-10f) + dx_vf_set(2.77068142495902e-08f);
  p = x2 * p + dx_vf_set(-2.10102402082508e-06f);
  p = x2 * p + dx_vf_set(-5.69250639462346e-05f);
  p = x2 * p + dx_vf_set(-7.34990630326855e-04f);
  p = x2 * p + dx_vf_set(-2.95459980854025e-03f);
  p = x2 * p + dx_vf_set(-1.60960333262415e-02f);
  p = x * p;
  dx_vf q = x2 * dx_vf_set(-1.45660718464996e-05f) + dx_vf_set(-2.13374055278905e-04f);
  q = x2 * q + dx_vf_set(-1.68282697438203e-03f);
  q = x2 * q + dx_vf_set(-7.37332916720468e-03f);
  q = x2 * q + dx_vf_set(-1.42647390514189e-02f);
  return p / q;
}

#pragma GCC diagnostic pop

#endif
