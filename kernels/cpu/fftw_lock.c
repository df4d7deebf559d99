/* fftw_lock.c: the FFTW planner lock (see dx_fftw_lock.h). */
#include <pthread.h>

#include "dx_fftw_lock.h"

static pthread_mutex_t fftw_mu = PTHREAD_MUTEX_INITIALIZER;

void dx_fftw_planner_lock(void) { pthread_mutex_lock(&fftw_mu); }
void dx_fftw_planner_unlock(void) { pthread_mutex_unlock(&fftw_mu); }
