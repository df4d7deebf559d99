/* nn_pool.c: the worker threads that the CPU ops split their matrix
 * products (nn_sgemm.c), elementwise, normalisation and data-movement
 * loops over.
 *
 * One process-wide pool of dx_cpu_threads() - 1 workers, started on first
 * use; the calling thread takes part 0 of every job. Threading: any thread
 * may call dx_cpu_parallel; one job runs on the pool at a time, and a call
 * that finds the pool busy (another backend's worker, or a call from inside
 * a job) runs its range serially in the caller, so results never depend on
 * who got the pool: every op's parts compute exactly what the serial loop
 * computes for the same range. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "nn_cpu.h"

#define POOL_MAX 16

static struct {
  pthread_once_t once;
  pthread_mutex_t busy; /* held by the caller owning the current job */
  pthread_mutex_t mu;
  pthread_cond_t go, done;
  int threads;           /* workers + the caller */
  unsigned long gen;     /* job generation the workers wait for */
  int pending;           /* workers still running the current job */
  dx_cpu_range_fn fn;
  void *ctx;
  long long n;
  int parts;
} pool = {.once = PTHREAD_ONCE_INIT, .busy = PTHREAD_MUTEX_INITIALIZER, .mu = PTHREAD_MUTEX_INITIALIZER,
          .go = PTHREAD_COND_INITIALIZER, .done = PTHREAD_COND_INITIALIZER};

static void part_range(long long n, int parts, int p, long long *i0, long long *i1) {
  *i0 = n * p / parts;
  *i1 = n * (p + 1) / parts;
}

static void *worker(void *arg) {
  int id = (int)(intptr_t)arg; /* 1 .. threads-1 */
  unsigned long seen = 0;
  for (;;) {
    pthread_mutex_lock(&pool.mu);
    while (pool.gen == seen) pthread_cond_wait(&pool.go, &pool.mu);
    seen = pool.gen;
    dx_cpu_range_fn fn = pool.fn;
    void *ctx = pool.ctx;
    long long n = pool.n;
    int parts = pool.parts;
    pthread_mutex_unlock(&pool.mu);
    if (id < parts) {
      long long i0, i1;
      part_range(n, parts, id, &i0, &i1);
      if (i1 > i0) fn(ctx, i0, i1);
    }
    pthread_mutex_lock(&pool.mu);
    if (--pool.pending == 0) pthread_cond_signal(&pool.done);
    pthread_mutex_unlock(&pool.mu);
  }
  return NULL;
}

static void pool_start(void) {
  long t = 0;
  const char *env = getenv("DEMIX_CPU_THREADS");
  if (env && *env) t = strtol(env, NULL, 10);
  if (t <= 0) t = sysconf(_SC_NPROCESSORS_ONLN);
  if (t < 1) t = 1;
  if (t > POOL_MAX) t = POOL_MAX;
  pool.threads = 1;
  for (int i = 1; i < t; i++) {
    pthread_t th;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&th, &at, worker, (void *)(intptr_t)i) == 0) pool.threads++;
    pthread_attr_destroy(&at);
  }
}

int dx_cpu_threads(void) {
  pthread_once(&pool.once, pool_start);
  return pool.threads;
}

void dx_cpu_parallel(long long n, long long grain, dx_cpu_range_fn fn, void *ctx) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  int parts = n / grain < POOL_MAX ? (int)(n / grain) : POOL_MAX;
  if (parts > 1) parts = parts < dx_cpu_threads() ? parts : dx_cpu_threads();
  if (parts <= 1 || pthread_mutex_trylock(&pool.busy) != 0) {
    fn(ctx, 0, n);
    return;
  }
  pthread_mutex_lock(&pool.mu);
  pool.fn = fn;
  pool.ctx = ctx;
  pool.n = n;
  pool.parts = parts;
  pool.pending = pool.threads - 1;
  pool.gen++;
  pthread_cond_broadcast(&pool.go);
  pthread_mutex_unlock(&pool.mu);
  long long i0, i1;
  part_range(n, parts, 0, &i0, &i1);
  if (i1 > i0) fn(ctx, i0, i1);
  pthread_mutex_lock(&pool.mu);
  while (pool.pending > 0) pthread_cond_wait(&pool.done, &pool.mu);
  pthread_mutex_unlock(&pool.mu);
  pthread_mutex_unlock(&pool.busy);
}
