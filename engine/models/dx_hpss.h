/* dx_hpss.h: harmonic/percussive separation by median filtering of the STFT
 * magnitude (Fitzgerald 2010), as librosa.effects.hpss computes it with its
 * defaults: centred STFT (n_fft 2048, hop 512, periodic Hann, zero padding),
 * a median over 31 frames in time for the harmonic part and over 31 bins in
 * frequency for the percussive part (scipy's reflect edges), soft masks
 * H^2 / (H^2 + P^2), inverse STFT with window-sum normalisation.
 *
 * The harmonic stem is the masked inverse STFT; the percussive stem is the
 * mix minus the harmonic stem, so the two masks are complementary and the
 * stems add back to the mix exactly (up to one float rounding).
 *
 * Memory: the track is processed in blocks of 256 frames with a 15-frame
 * halo; dx_hpss_stream holds only block-sized buffers whatever the length.
 * Threading: any thread; FFTW plans are created under a lock. */
#ifndef DX_HPSS_H
#define DX_HPSS_H

#include <stddef.h>

#include "dx_apply.h"
#include "dx_error.h"

typedef struct {
  int n_fft;     /* 2048 */
  int hop;       /* 512 */
  int win_harm;  /* 31 (frames, odd) */
  int win_perc;  /* 31 (bins, odd) */
  double power;  /* soft-mask exponent, 2 */
  /* progress after each block (done, total); nonzero return cancels */
  int (*progress)(void *user, size_t done, size_t total);
  void *progress_user;
} dx_hpss_params;

dx_hpss_params dx_hpss_default_params(void);

/* mix [channels][length] planar -> out [2][channels][length] (harmonic,
 * percussive), caller-allocated. DX_ERR_INVALID for bad parameters,
 * DX_ERR_EMPTY for length 0, DX_ERR_NOMEM, DX_ERR_CANCELLED. */
dx_status dx_hpss_run(const float *mix, int channels, size_t length, const dx_hpss_params *p, float *out,
                      dx_errbuf *err);

/* The same, streamed: the track [channels][io->length] is read and the stems
 * [2][channels][n] written through io (dx_apply.h's contract, 2 sources).
 * Statuses as dx_hpss_run, or the first non-OK one a read or write returned. */
dx_status dx_hpss_stream(int channels, const dx_apply_io *io, const dx_hpss_params *p, dx_errbuf *err);

#endif
