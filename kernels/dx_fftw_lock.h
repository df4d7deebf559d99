/* dx_fftw_lock.h: the one lock around FFTW's planner.
 *
 * FFTW's planner (plan creation and destruction) is process-global and not
 * thread-safe, while plans may be executed from any thread. Every part of
 * demix that makes or destroys an FFTW plan (analysis features, tempo, the
 * Demucs STFT, hpss) holds this lock around it, so demixd's worker threads
 * can run different job types at once. */
#ifndef DX_FFTW_LOCK_H
#define DX_FFTW_LOCK_H

void dx_fftw_planner_lock(void);
void dx_fftw_planner_unlock(void);

#endif
