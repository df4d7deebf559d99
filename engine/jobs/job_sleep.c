/* job_sleep.c: the `sleep` job, a diagnostic job type for testing and
 * benchmarking the engine loop (claims, leases, progress, cancel, retry,
 * shutdown) without audio.
 *
 * Params (all optional):
 *   "seconds": total time to sleep, 0-86400 (default 1)
 *   "step": progress step in seconds, 0.01-10 (default 0.1)
 *   "fail_attempts": n, fail with a transient (retried) error while the
 *                    attempt number is <= n (default 0)
 *   "fail": "message", fail permanently with this message (no retry)
 * Result: {"slept": seconds, "attempt": n, "owner": "<lease owner>"}.
 * Threading: runs on a worker thread; touches no shared state. */
#include <math.h>
#include <time.h>

#include "dx_job_runner.h"

static int get_number(json_object *params, const char *key, double *out, dx_errbuf *err) {
  json_object *v;
  if (!json_object_object_get_ex(params, key, &v)) return 1;
  if (!json_object_is_type(v, json_type_double) && !json_object_is_type(v, json_type_int)) {
    dx_fail(err, DX_ERR_INVALID, "sleep: %s must be a number", key);
    return 0;
  }
  *out = json_object_get_double(v);
  return 1;
}

dx_status dx_job_sleep(dx_job_ctx *ctx, dx_errbuf *err) {
  double seconds = 1, step = 0.1, fail_attempts = 0;
  dx_job_set_retryable(ctx, 0);
  if (!get_number(ctx->params, "seconds", &seconds, err) || !get_number(ctx->params, "step", &step, err) ||
      !get_number(ctx->params, "fail_attempts", &fail_attempts, err))
    return DX_ERR_INVALID;
  if (!(seconds >= 0 && seconds <= 86400)) return dx_fail(err, DX_ERR_INVALID, "sleep: seconds must be 0-86400");
  if (!(step >= 0.01 && step <= 10)) return dx_fail(err, DX_ERR_INVALID, "sleep: step must be 0.01-10");
  json_object *fail;
  if (json_object_object_get_ex(ctx->params, "fail", &fail))
    return dx_fail(err, DX_ERR_INVALID, "sleep: %s", json_object_get_string(fail));

  double t0 = dx_now(), end = t0 + seconds;
  dx_status st;
  for (;;) {
    double now = dx_now();
    int pct = seconds > 0 ? (int)floor(100.0 * (now - t0) / seconds) : 100;
    if ((st = dx_job_progress(ctx, pct > 99 ? 99 : pct)) != DX_OK) return st;
    if (now >= end) break;
    double d = end - now < step ? end - now : step;
    struct timespec ts = {(time_t)d, (long)((d - floor(d)) * 1e9)};
    nanosleep(&ts, NULL);
  }
  if (ctx->job->attempts <= (int)fail_attempts) {
    dx_job_set_retryable(ctx, 1);
    return dx_fail(err, DX_ERR_BUSY, "sleep: simulated transient failure on attempt %d", ctx->job->attempts);
  }
  json_object *r = json_object_new_object();
  if (!r) return dx_fail(err, DX_ERR_NOMEM, "out of memory");
  json_object_object_add(r, "slept", json_object_new_double(dx_now() - t0));
  json_object_object_add(r, "attempt", json_object_new_int(ctx->job->attempts));
  json_object_object_add(r, "owner", json_object_new_string(ctx->owner ? ctx->owner : ""));
  dx_job_set_result(ctx, r);
  return DX_OK;
}
