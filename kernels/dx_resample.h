/* dx_resample.h: the windowed-sinc filter of the Demucs v3 time-only model's
 * 2x resampling (julius.resample_frac with its defaults: 24 zero crossings,
 * rolloff 0.945), shared by the CPU and CUDA versions of the resample op.
 *
 * Resampling old_sr -> new_sr (after dividing by their gcd) uses new_sr
 * filters of DX_RESAMPLE_TAPS(old_sr, new_sr) taps each. Output sample
 * n*new_sr + j is  sum_k taps[j][k] * xpad[n*old_sr + k], where xpad is the
 * input replicate-padded by `width` samples on the left and width + old_sr
 * on the right; the output has floor(T * new_sr / old_sr) samples.
 * Thread-safe: pure functions. */
#ifndef DX_RESAMPLE_H
#define DX_RESAMPLE_H

#define DX_RESAMPLE_ZEROS 24
#define DX_RESAMPLE_ROLLOFF 0.945

/* Half-width of the filter (julius' `_width`): ceil(zeros * old_sr / (rolloff * min(old_sr, new_sr))). */
int dx_resample_width(int old_sr, int new_sr);

/* Fill taps[new_sr][2*width + old_sr] (row-major). Returns the number of
 * taps per filter, or -1 if old_sr/new_sr are not positive or taps would
 * need more than cap floats. */
int dx_resample_taps(int old_sr, int new_sr, float *taps, int cap);

#endif
