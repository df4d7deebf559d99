/* runner.c: a job worker: claim, run the handler, finish the row; and its
 * lease keeper thread (see dx_job_runner.h).
 *
 * Threading: a worker is driven by one thread (dx_job_worker_run_next). Its
 * keeper thread renews the lease of the running job on a second connection
 * every min(1 s, heartbeat_seconds, lease_seconds / 3), reading
 * cancel_requested each time, and writes progress at
 * most every 0.5 s; it records cancel requests and a lost lease, which the
 * handler sees through dx_job_progress. State shared between the two (and
 * with dx_job_worker_abort from the daemon's main thread) sits under mu. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dx_analysis.h"
#include "dx_job_runner.h"

#define PROGRESS_MIN_INTERVAL 0.5
#define FINISH_TRIES 3

struct dx_job_worker {
  const dx_config *cfg;
  int index;
  char owner[192];
  char device[16];
  const char *const *types; /* NULL: every registered type */
  dx_db *db;  /* the handler's and the runner's connection */
  dx_db *kdb; /* the keeper's connection */
  dx_backend *be;
  int lease_seconds;
  double hb_interval;

  pthread_t keeper;
  int keeper_started;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  /* under mu */
  int quit;
  int active;        /* a job is running */
  unsigned gen;      /* bumped per job so a late heartbeat result is dropped */
  dx_job cur;        /* copy of the running job (params_json NULL) */
  int progress;      /* latest from the handler */
  int written;       /* latest written */
  double last_write; /* dx_now of the last renewal (or the claim) */
  int in_flight;
  int cancel;        /* cancel_requested seen */
  int lost;          /* lease lost or could not be renewed in time */
  int abort;         /* engine shutting down: stop and release */
  int device_lost;   /* the backend failed with a device error and could not be opened again */
};

/* ---- handler context ---- */

static dx_status parse_params(const char *json, json_object **out, dx_errbuf *err) {
  *out = NULL;
  json_object *o = json_tokener_parse(json && *json ? json : "{}");
  if (!o || !json_object_is_type(o, json_type_object)) {
    json_object_put(o);
    return dx_fail(err, DX_ERR_PARSE, "job params are not a JSON object");
  }
  *out = o;
  return DX_OK;
}

dx_status dx_job_ctx_init(dx_job_ctx *ctx, const dx_config *cfg, dx_db *db, dx_backend *backend, const dx_job *job,
                          dx_errbuf *err) {
  memset(ctx, 0, sizeof *ctx);
  ctx->cfg = cfg;
  ctx->db = db;
  ctx->backend = backend;
  ctx->job = job;
  ctx->owner = "local";
  ctx->retryable_ = -1;
  ctx->last_progress_ = -1;
  return parse_params(job ? job->params_json : NULL, &ctx->params, err);
}

void dx_job_ctx_clear(dx_job_ctx *ctx) {
  if (!ctx) return;
  json_object_put(ctx->params);
  json_object_put(ctx->result_);
  ctx->params = ctx->result_ = NULL;
}

json_object *dx_job_ctx_result(const dx_job_ctx *ctx) { return ctx->result_; }

void dx_job_set_result(dx_job_ctx *ctx, json_object *result) {
  json_object_put(ctx->result_);
  ctx->result_ = result;
}

void dx_job_set_retryable(dx_job_ctx *ctx, int retryable) { ctx->retryable_ = retryable ? 1 : 0; }

int dx_job_status_retryable(dx_status st) {
  switch (st) {
  case DX_ERR_DB: case DX_ERR_CUDA: case DX_ERR_CUFFT: case DX_ERR_CUDNN: case DX_ERR_CUBLAS:
  case DX_ERR_NOMEM: case DX_ERR_IO: case DX_ERR_NETWORK: case DX_ERR_BUSY: case DX_ERR_TIMEOUT:
  case DX_ERR_NO_DEVICE:
    return 1;
  default:
    return 0;
  }
}

static int status_is_cuda(dx_status st) {
  return st == DX_ERR_CUDA || st == DX_ERR_CUFFT || st == DX_ERR_CUDNN || st == DX_ERR_CUBLAS;
}

dx_status dx_job_progress(dx_job_ctx *ctx, int pct) {
  dx_job_worker *w = ctx ? ctx->worker_ : NULL;
  if (!w) return DX_OK;
  if (pct > 100) pct = 100;
  int stop;
  pthread_mutex_lock(&w->mu);
  if (pct >= 0 && pct != w->progress) {
    w->progress = pct;
    pthread_cond_broadcast(&w->cv);
  }
  stop = w->cancel || w->lost || w->abort;
  pthread_mutex_unlock(&w->mu);
  if (pct >= 0) ctx->last_progress_ = pct;
  return stop ? DX_ERR_CANCELLED : DX_OK;
}

/* ---- keeper ---- */

static void deadline_ts(double t_mono, struct timespec *ts) {
  /* cv uses CLOCK_MONOTONIC, the clock dx_now reads */
  ts->tv_sec = (time_t)t_mono;
  ts->tv_nsec = (long)((t_mono - (double)ts->tv_sec) * 1e9);
  if (ts->tv_nsec >= 1000000000L) { ts->tv_sec++; ts->tv_nsec -= 1000000000L; }
}

static void *keeper_main(void *arg) {
  dx_job_worker *w = arg;
  pthread_mutex_lock(&w->mu);
  while (!w->quit) {
    if (!w->active || w->lost) {
      pthread_cond_wait(&w->cv, &w->mu);
      continue;
    }
    double now = dx_now();
    if (now - w->last_write > (double)w->lease_seconds) {
      /* Could not renew for a whole lease: another engine may own the job now. */
      DX_WARN("job %s: lease not renewed for %.1f s; stopping it", w->cur.id, now - w->last_write);
      w->lost = 1;
      continue;
    }
    double due = w->last_write + w->hb_interval;
    if (w->progress != w->written && w->last_write + PROGRESS_MIN_INTERVAL < due)
      due = w->last_write + PROGRESS_MIN_INTERVAL;
    if (now < due) {
      struct timespec ts;
      deadline_ts(due, &ts);
      pthread_cond_timedwait(&w->cv, &w->mu, &ts);
      continue;
    }
    dx_job job = w->cur;
    unsigned gen = w->gen;
    int prog = w->progress;
    w->in_flight = 1;
    pthread_mutex_unlock(&w->mu);

    int cancel = 0;
    dx_errbuf err = {{0}};
    dx_status st = dx_job_heartbeat(w->kdb, &job, w->owner, w->lease_seconds, prog, &cancel, &err);
    double done = dx_now();

    pthread_mutex_lock(&w->mu);
    w->in_flight = 0;
    if (w->active && w->gen == gen) {
      if (st == DX_OK) {
        w->last_write = done;
        w->written = prog;
        if (cancel && !w->cancel) DX_INFO("job %s: cancel requested", job.id);
        w->cancel |= cancel;
      } else if (st == DX_ERR_NOT_FOUND) {
        DX_WARN("job %s: lease lost (taken over or removed); stopping it", job.id);
        w->lost = 1;
      } else {
        DX_WARN("job %s: lease renewal failed: %s", job.id, err.msg[0] ? err.msg : dx_strerror(st));
        /* retry in about a second without spinning */
        struct timespec ts;
        deadline_ts(dx_now() + 1.0, &ts);
        pthread_cond_timedwait(&w->cv, &w->mu, &ts);
      }
    }
    pthread_cond_broadcast(&w->cv);
  }
  pthread_mutex_unlock(&w->mu);
  return NULL;
}

/* ---- worker ---- */

dx_status dx_job_worker_open(const dx_config *cfg, const dx_job_worker_params *p, dx_job_worker **out,
                             dx_errbuf *err) {
  *out = NULL;
  dx_job_worker *w = calloc(1, sizeof *w);
  if (!w) return dx_fail(err, DX_ERR_NOMEM, "out of memory");
  w->cfg = cfg;
  w->index = p ? p->index : 0;
  char host[128] = "localhost";
  if (p && p->hostname) snprintf(host, sizeof host, "%s", p->hostname);
  else if (gethostname(host, sizeof host) != 0) snprintf(host, sizeof host, "localhost");
  host[sizeof host - 1] = 0;
  snprintf(w->owner, sizeof w->owner, "%s:%ld:%d", host, (long)getpid(), w->index);
  snprintf(w->device, sizeof w->device, "%s", p && p->device ? p->device : cfg->device);
  w->types = p ? p->types : NULL;
  w->lease_seconds = cfg->lease_seconds > 0 ? cfg->lease_seconds : 30;
  w->hb_interval = cfg->heartbeat_seconds > 0 ? cfg->heartbeat_seconds : 5;
  if (w->hb_interval > w->lease_seconds / 3.0) w->hb_interval = w->lease_seconds / 3.0;
  if (w->hb_interval > 1.0) w->hb_interval = 1.0; /* also how soon a cancel request is seen */
  if (w->hb_interval < 0.2) w->hb_interval = 0.2;

  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_mutex_init(&w->mu, NULL);
  pthread_cond_init(&w->cv, &ca);
  pthread_condattr_destroy(&ca);

  dx_status st = dx_db_open(cfg, &w->db, err);
  if (st == DX_OK) st = dx_db_open(cfg, &w->kdb, err);
  if (st == DX_OK) st = dx_backend_open(w->device, &w->be, err);
  if (st == DX_OK) {
    if (pthread_create(&w->keeper, NULL, keeper_main, w) != 0) st = dx_fail(err, DX_ERR_INTERNAL, "cannot start lease keeper");
    else w->keeper_started = 1;
  }
  if (st != DX_OK) {
    dx_job_worker_close(w);
    return st;
  }
  *out = w;
  return DX_OK;
}

void dx_job_worker_close(dx_job_worker *w) {
  if (!w) return;
  if (w->keeper_started) {
    pthread_mutex_lock(&w->mu);
    w->quit = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->keeper, NULL);
  }
  dx_backend_close(w->be);
  dx_db_close(w->kdb);
  dx_db_close(w->db);
  pthread_cond_destroy(&w->cv);
  pthread_mutex_destroy(&w->mu);
  free(w);
}

const char *dx_job_worker_owner(const dx_job_worker *w) { return w->owner; }
dx_backend *dx_job_worker_backend(dx_job_worker *w) { return w->be; }

void dx_job_worker_abort(dx_job_worker *w) {
  pthread_mutex_lock(&w->mu);
  w->abort = 1;
  pthread_mutex_unlock(&w->mu);
}

int dx_job_worker_current(dx_job_worker *w, char id_out[DX_UUID_LEN]) {
  pthread_mutex_lock(&w->mu);
  int active = w->active;
  memcpy(id_out, active ? w->cur.id : "", active ? DX_UUID_LEN : 1);
  pthread_mutex_unlock(&w->mu);
  return active;
}

dx_status dx_job_worker_release_stuck(dx_job_worker *w, dx_db *db, dx_errbuf *err) {
  pthread_mutex_lock(&w->mu);
  int active = w->active && !w->lost;
  dx_job job = w->cur;
  pthread_mutex_unlock(&w->mu);
  if (!active) return DX_OK;
  return dx_job_release(db, &job, w->owner, err);
}

/* Run a finishing statement, retrying database errors briefly (the
 * connection re-opens itself). NOT_FOUND (lease lost) is not retried. */
#define FINISH(call)                                                                \
  do {                                                                              \
    for (int try_ = 0; try_ < FINISH_TRIES; try_++) {                               \
      fst = (call);                                                                 \
      if (fst != DX_ERR_DB) break;                                                  \
      usleep(300000);                                                               \
    }                                                                               \
  } while (0)

static void reopen_backend(dx_job_worker *w) {
  dx_backend_close(w->be);
  w->be = NULL;
  dx_errbuf err = {{0}};
  if (dx_backend_open(w->device, &w->be, &err) != DX_OK)
    DX_ERROR("worker %d: cannot reopen the %s backend: %s", w->index, w->device, err.msg);
}

int dx_job_worker_device_lost(dx_job_worker *w) {
  pthread_mutex_lock(&w->mu);
  int lost = w->device_lost;
  pthread_mutex_unlock(&w->mu);
  return lost;
}

dx_status dx_job_worker_run_next(dx_job_worker *w, int *ran, dx_errbuf *err) {
  *ran = 0;
  pthread_mutex_lock(&w->mu);
  int aborting = w->abort;
  pthread_mutex_unlock(&w->mu);
  if (aborting) return DX_OK;
  if (!w->be) {
    reopen_backend(w);
    if (!w->be) return dx_fail(err, DX_ERR_NO_DEVICE, "worker %d has no compute backend", w->index);
  }
  dx_job job;
  dx_status st = dx_job_claim(w->db, w->owner, w->lease_seconds, w->types ? w->types : dx_job_types(), &job, err);
  if (st == DX_ERR_NOT_FOUND) {
    /* Idle: memory kept for reuse between back-to-back jobs goes back to the
     * system (the analyzer's track-sized buffers, the CPU backend's cache) */
    dx_analyzer_cached_trim(w->be);
    if (w->be->trim) w->be->trim(w->be);
    return DX_OK;
  }
  if (st != DX_OK) return st;
  *ran = 1;
  DX_INFO("job %s (%s) attempt %d/%d started by %s", job.id, job.type, job.attempts, job.max_attempts, w->owner);

  dx_job_ctx ctx;
  dx_errbuf herr = {{0}};
  dx_job_handler fn = dx_job_handler_find(job.type);
  dx_status hst = dx_job_ctx_init(&ctx, w->cfg, w->db, w->be, &job, &herr);
  ctx.owner = w->owner;
  ctx.worker_index = w->index;
  ctx.worker_ = w;

  pthread_mutex_lock(&w->mu);
  w->cur = job;
  w->cur.params_json = NULL;
  w->gen++;
  w->active = 1;
  w->progress = w->written = 0;
  w->last_write = dx_now();
  w->cancel = w->lost = 0;
  pthread_cond_broadcast(&w->cv);
  pthread_mutex_unlock(&w->mu);

  double t0 = dx_now();
  if (hst == DX_OK && !fn) hst = dx_fail(&herr, DX_ERR_UNSUPPORTED, "no handler for job type %s", job.type);
  if (hst == DX_OK) hst = fn(&ctx, &herr);

  pthread_mutex_lock(&w->mu);
  w->active = 0;
  while (w->in_flight) pthread_cond_wait(&w->cv, &w->mu);
  int cancel = w->cancel, lost = w->lost, abort_ = w->abort;
  pthread_mutex_unlock(&w->mu);
  double secs = dx_now() - t0;

  dx_status fst = DX_OK;
  dx_errbuf ferr = {{0}};
  const char *what;
  if (lost) {
    what = "abandoned (lease lost)";
  } else if (hst == DX_OK) {
    json_object *res = dx_job_ctx_result(&ctx);
    const char *res_json = res ? json_object_to_json_string_ext(res, JSON_C_TO_STRING_PLAIN) : NULL;
    FINISH(dx_job_complete(w->db, &job, w->owner, res_json, &ferr));
    what = "completed";
  } else if (hst == DX_ERR_CANCELLED && abort_ && !cancel) {
    FINISH(dx_job_release(w->db, &job, w->owner, &ferr));
    what = "released (shutdown)";
  } else if (hst == DX_ERR_CANCELLED && cancel) {
    FINISH(dx_job_mark_cancelled(w->db, &job, w->owner, &ferr));
    what = "cancelled";
  } else {
    int retryable = ctx.retryable_ >= 0 ? ctx.retryable_ : dx_job_status_retryable(hst);
    if (hst == DX_ERR_CANCELLED) retryable = 0; /* stopped on its own: not a transient failure */
    const char *msg = herr.msg[0] ? herr.msg : dx_strerror(hst);
    FINISH(dx_job_fail(w->db, &job, w->owner, msg, retryable, w->cfg->retry_backoff_seconds, &ferr));
    DX_WARN("job %s (%s) attempt %d failed (%s%s): %s", job.id, job.type, job.attempts, dx_status_name(hst),
            retryable && job.attempts < job.max_attempts ? ", will retry" : "", msg);
    what = "failed";
  }
  if (fst == DX_ERR_NOT_FOUND) DX_WARN("job %s: lease lost before it could be %s", job.id, what);
  else if (fst != DX_OK) DX_ERROR("job %s: could not record that it %s: %s", job.id, what, ferr.msg);
  DX_INFO("job %s (%s) %s by %s in %.3f s", job.id, job.type, what, w->owner, secs);

  if (status_is_cuda(hst)) {
    /* A CUDA error may leave the context unusable: start afresh. When that
     * fails too, the error was one that kills the process's CUDA context
     * (an illegal address, say), which only a new process recovers from. */
    reopen_backend(w);
    if (!w->be) {
      pthread_mutex_lock(&w->mu);
      w->device_lost = 1;
      pthread_mutex_unlock(&w->mu);
    }
  }
  dx_job_ctx_clear(&ctx);
  dx_job_clear(&job);
  if (fst != DX_OK && fst != DX_ERR_NOT_FOUND) {
    if (err) *err = ferr;
    return fst;
  }
  return DX_OK;
}
