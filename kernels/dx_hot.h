/* dx_hot.h: DX_HOT marks a hot loop to be compiled twice, for AVX2 + FMA
 * (x86-64-v3) and the baseline, with the CPU picking at load time (GCC
 * function multiversioning). Results may differ in the last bits between
 * the two (FMA contraction); nothing may depend on which one runs. */
#ifndef DX_HOT_H
#define DX_HOT_H

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define DX_HOT __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define DX_HOT
#endif

#endif
