/* dx_spec.h: the Demucs spectrogram conventions (SPEC.md section 3) as
 * graph steps on a dx_run: `_spec` (two-stage reflect padding, STFT,
 * Nyquist bin and edge frames dropped) and `_ispec` (its inverse), built on
 * the backend's stft/istft/pad1d ops. Used by the hybrid graphs.
 * Threading: per call (temporaries come from the run's arena). */
#ifndef DX_SPEC_H
#define DX_SPEC_H

#include "dx_model_impl.h"

/* Frames of _spec for a signal of `length` samples: ceil(length / (nfft/4)). */
long long dx_spec_frames(long long length, int nfft);

/* HTDemucs/HDemucs _spec: x [rows][length] (rows = channels of the batch
 * item) -> z [rows][2][nfft/2][frames] (real, imaginary planes): exactly
 * the CaC layout [rows*2][nfft/2][frames]. Errors: the ops' statuses. */
dx_status dx_spec_forward(dx_run *r, const float *x, int rows, long long length, int nfft, float *z);

/* _ispec: z [rows][2][nfft/2][frames] -> y [rows][length], where frames =
 * dx_spec_frames(length, nfft). */
dx_status dx_spec_inverse(dx_run *r, const float *z, int rows, int frames, int nfft, long long length, float *y);

#endif
