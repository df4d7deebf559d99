/* dx_job_runner.h: how the engine runs jobs: handlers, their context, the
 * registry of job types and the worker that claims and runs them.
 *
 * Adding a job type (analysis, separation, ...):
 *   1. write engine/jobs/job_<type>.c with
 *        dx_status dx_job_<type>(dx_job_ctx *ctx, dx_errbuf *err);
 *   2. declare it in the list below and add one line to the table in
 *      engine/jobs/registry.c: {"<type>", dx_job_<type>}.
 * The handler reads ctx->params (the job's params, a parsed JSON object),
 * works with ctx->db (this worker's connection) and ctx->backend (this
 * worker's compute backend), calls dx_job_progress(ctx, pct) now and then
 * (it returns DX_ERR_CANCELLED when the job must stop: return that status at
 * once after cleaning up, without writing results), stores its answer with
 * dx_job_set_result, and returns DX_OK or a failure status with a readable
 * message in err. Whether a failure is retried follows the status
 * (dx_job_status_retryable: database, CUDA, memory, I/O and network errors
 * are transient; bad input, missing or damaged files are not) unless the
 * handler says otherwise with dx_job_set_retryable.
 * Files a handler writes go through a temporary name and rename before the
 * rows pointing at them are committed (see DESIGN.md).
 *
 * Lease: while a handler runs, a keeper thread of the worker renews the
 * lease every min(1 s, heartbeat_seconds, lease_seconds / 3) on its own
 * connection, whether or not the handler reports progress, and reads
 * cancel_requested each time (so a cancel is seen within about a second);
 * progress values are written at most every 0.5 s. So a long step without progress calls is
 * safe; a crashed process stops renewing and its jobs go back to the queue.
 *
 * Threading: a dx_job_worker and the ctx it hands to a handler belong to one
 * thread; the registry is read-only once workers run (register before). */
#ifndef DX_JOB_RUNNER_H
#define DX_JOB_RUNNER_H

#include <json-c/json.h>

#include "dx_backend.h"
#include "dx_config.h"
#include "dx_db.h"
#include "dx_jobs.h"

typedef struct dx_job_worker dx_job_worker;

typedef struct {
  const dx_config *cfg;
  dx_db *db;            /* the worker's connection; leave no transaction open */
  dx_backend *backend;  /* the worker's compute backend (cfg device, CPU fallback per --device) */
  const dx_job *job;    /* id, user_id, track_id ("" when none), type, attempts */
  json_object *params;  /* the job's params, always an object; owned by the runner */
  const char *owner;    /* lease owner "<hostname>:<pid>:<worker>" */
  int worker_index;
  /* Runner-private below; use the functions. */
  dx_job_worker *worker_; /* NULL when run outside a worker (tests, CLI) */
  json_object *result_;
  int retryable_;       /* -1: follow the status */
  int last_progress_;
} dx_job_ctx;

typedef dx_status (*dx_job_handler)(dx_job_ctx *ctx, dx_errbuf *err);

/* Report progress (0-100; -1 only checks). Cheap: the value is handed to the
 * keeper thread, which writes it at most every 0.5 s. Returns
 * DX_ERR_CANCELLED when a cancel was requested, the lease was lost or the
 * engine is shutting down past its grace period; DX_OK otherwise (also
 * outside a worker). */
dx_status dx_job_progress(dx_job_ctx *ctx, int pct);

/* Set the job's result (a JSON object or NULL). Takes ownership of result;
 * a second call replaces the first. */
void dx_job_set_result(dx_job_ctx *ctx, json_object *result);

/* Override whether the failure being returned may be retried (1) or must
 * fail the job at once (0). */
void dx_job_set_retryable(dx_job_ctx *ctx, int retryable);

/* 1 for transient failures worth a retry (DB, CUDA family, memory, I/O,
 * network, busy, timeout, no device), 0 for the rest. */
int dx_job_status_retryable(dx_status st);

/* Fill ctx for running a handler outside a worker (tests, the CLI): progress
 * never cancels. params_json NULL means {}. Release with dx_job_ctx_clear. */
dx_status dx_job_ctx_init(dx_job_ctx *ctx, const dx_config *cfg, dx_db *db, dx_backend *backend, const dx_job *job,
                          dx_errbuf *err);
void dx_job_ctx_clear(dx_job_ctx *ctx);
/* The result set by the handler (borrowed; NULL when none). */
json_object *dx_job_ctx_result(const dx_job_ctx *ctx);

/* ---- the track of a job (track_file.c) ---- */

#define DX_JOB_REL_MAX 1100                   /* tracks.file_path, relative to storage_dir */
#define DX_JOB_PATH_MAX (DX_CONFIG_STR + 1200) /* storage_dir/file_path */

/* The file of the job's track (ctx->job->track_id, not empty): rel gets
 * tracks.file_path, path storage_dir/rel (both written by the call). A
 * database failure returns its status, left retryable; past the lookup the
 * job is set not retryable (dx_job_set_retryable(ctx, 0)): an unknown track
 * is DX_ERR_NOT_FOUND, a file_path that is empty, absolute or has a ".."
 * component DX_ERR_INVALID. The file itself is not looked at. */
dx_status dx_job_track_path(dx_job_ctx *ctx, char rel[DX_JOB_REL_MAX], char path[DX_JOB_PATH_MAX], dx_errbuf *err);

/* ---- registry (registry.c) ---- */

/* Built-in handlers. */
dx_status dx_job_probe(dx_job_ctx *ctx, dx_errbuf *err); /* job_probe.c */
dx_status dx_job_sleep(dx_job_ctx *ctx, dx_errbuf *err); /* job_sleep.c */
dx_status dx_job_separate(dx_job_ctx *ctx, dx_errbuf *err); /* job_separate.c */
dx_status dx_job_analyze(dx_job_ctx *ctx, dx_errbuf *err); /* job_analyze.c */

/* The handler for type, or NULL. */
dx_job_handler dx_job_handler_find(const char *type);
/* Add or replace a handler before workers start (DX_ERR_INVALID for a bad
 * type name, DX_ERR_TOO_LARGE when the table is full). Not thread-safe. */
dx_status dx_job_register(const char *type, dx_job_handler fn);
/* NULL-terminated list of the registered type names (static storage, valid
 * until the next dx_job_register), for dx_job_claim. */
const char *const *dx_job_types(void);

/* ---- worker (runner.c) ---- */

typedef struct {
  int index;            /* worker number within the process */
  const char *hostname; /* NULL: gethostname() */
  const char *device;   /* cpu | cuda | auto; NULL: cfg->device */
  const char *const *types; /* NULL-terminated job types to claim; NULL: every registered type */
} dx_job_worker_params;

/* Open a worker: its own dx_db, backend and lease keeper thread. The worker
 * keeps a pointer to cfg (must outlive it). Fails with the connection's or
 * backend's status. */
dx_status dx_job_worker_open(const dx_config *cfg, const dx_job_worker_params *p, dx_job_worker **out,
                             dx_errbuf *err);
/* Stops the keeper and closes everything. NULL is a no-op. Call only when no
 * job is running on it. */
void dx_job_worker_close(dx_job_worker *w);

/* Claim one job of the worker's types and run it to its end: complete,
 * fail (with retry), cancelled, or released when dx_job_worker_abort was
 * called. *ran is 1 when a job was claimed. Returns DX_OK unless the
 * database failed around the job (a job's own failure is DX_OK here). */
dx_status dx_job_worker_run_next(dx_job_worker *w, int *ran, dx_errbuf *err);

/* From any thread: make the running handler's next progress call return
 * DX_ERR_CANCELLED and give its job back to the queue (shutdown). Sticky. */
void dx_job_worker_abort(dx_job_worker *w);
/* From any thread: copy of the job running now (id empty when idle). */
int dx_job_worker_current(dx_job_worker *w, char id_out[DX_UUID_LEN]);
/* From any thread, when the handler would not stop: release its job with
 * the given connection so another engine takes it (the process is exiting). */
dx_status dx_job_worker_release_stuck(dx_job_worker *w, dx_db *db, dx_errbuf *err);
/* From any thread: whether a device error left this worker without a
 * backend that can be opened again (the process's GPU context is lost;
 * the engine restarts itself to recover). */
int dx_job_worker_device_lost(dx_job_worker *w);
/* The worker's lease owner string and backend. */
const char *dx_job_worker_owner(const dx_job_worker *w);
dx_backend *dx_job_worker_backend(dx_job_worker *w);

#endif
