/* model_profile.c: the op-level profile of model forwards (DEMIX_PROFILE=1,
 * see dx_model.h). One process-wide table of lines keyed by static names
 * (the op names DX_NN/DX_BE stringify, plus "upload", "download" and
 * "forward"), each with its call count and seconds, under one lock: ops
 * are synchronised around anyway, so the lock costs nothing that matters.
 * Threading: thread-safe. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "dx_model_impl.h"
#include "dx_util.h"

#define PROF_LINES 64

typedef struct {
  const char *what;
  long calls;
  double seconds;
} prof_line;

static pthread_mutex_t prof_lock = PTHREAD_MUTEX_INITIALIZER;
static prof_line prof_lines[PROF_LINES];
static int prof_n;
static int prof_on = -1; /* -1: DEMIX_PROFILE not read yet */

int dx_model_profile_enabled(void) {
  pthread_mutex_lock(&prof_lock);
  if (prof_on < 0) {
    const char *v = getenv("DEMIX_PROFILE");
    prof_on = v && *v && strcmp(v, "0") != 0;
  }
  int on = prof_on;
  pthread_mutex_unlock(&prof_lock);
  return on;
}

void dx_model_profile_set(int on) {
  pthread_mutex_lock(&prof_lock);
  prof_on = on != 0;
  pthread_mutex_unlock(&prof_lock);
}

void dx_prof_add(const char *what, double seconds) {
  pthread_mutex_lock(&prof_lock);
  int i = 0;
  while (i < prof_n && strcmp(prof_lines[i].what, what) != 0) i++;
  if (i == prof_n && prof_n < PROF_LINES) prof_lines[prof_n++].what = what;
  if (i < prof_n) {
    prof_lines[i].calls++;
    prof_lines[i].seconds += seconds;
  }
  pthread_mutex_unlock(&prof_lock);
}

void dx_prof_begin(dx_run *r) {
  r->be->sync(r->be); /* the queued work is not this op's; its errors surface at the op's own sync */
  r->prof_t0 = dx_now();
}

dx_status dx_prof_end(dx_run *r, const char *op, dx_status st) {
  dx_status s2 = r->be->sync(r->be);
  dx_prof_add(op, dx_now() - r->prof_t0);
  return st != DX_OK ? st : s2;
}

static int by_seconds(const void *a, const void *b) {
  const prof_line *x = a, *y = b;
  return (x->seconds < y->seconds) - (x->seconds > y->seconds);
}

void dx_model_profile_report(FILE *f) {
  pthread_mutex_lock(&prof_lock);
  prof_line lines[PROF_LINES];
  int n = prof_n;
  memcpy(lines, prof_lines, (size_t)n * sizeof *lines);
  pthread_mutex_unlock(&prof_lock);
  double forward = 0, parts = 0; /* the whole forwards; every other line (ops, upload, download) */
  long forwards = 0;
  for (int i = 0; i < n; i++) {
    if (!strcmp(lines[i].what, "forward")) forward = lines[i].seconds, forwards = lines[i].calls;
    else parts += lines[i].seconds;
  }
  if (forward <= 0) return;
  qsort(lines, (size_t)n, sizeof *lines, by_seconds);
  fprintf(f, "profile (DEMIX_PROFILE): backend ops of the model forwards, each synchronised\n");
  fprintf(f, "  %-16s %9s %11s %7s %11s\n", "op", "calls", "seconds", "share", "us/call");
  for (int i = 0; i < n; i++) {
    if (!strcmp(lines[i].what, "forward")) continue;
    fprintf(f, "  %-16s %9ld %11.4f %6.1f%% %11.1f\n", lines[i].what, lines[i].calls, lines[i].seconds,
            100.0 * lines[i].seconds / forward, 1e6 * lines[i].seconds / (double)lines[i].calls);
  }
  double rest = forward > parts ? forward - parts : 0.0;
  fprintf(f, "  %-16s %9s %11.4f %6.1f%%\n", "(host, between)", "", rest, 100.0 * rest / forward);
  fprintf(f, "  %-16s %9ld %11.4f %6.1f%%\n", "forward (all)", forwards, forward, 100.0);
}

void dx_model_profile_reset(void) {
  pthread_mutex_lock(&prof_lock);
  prof_n = 0;
  memset(prof_lines, 0, sizeof prof_lines);
  pthread_mutex_unlock(&prof_lock);
}
