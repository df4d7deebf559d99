/* dx_jobs.h: the job queue on MariaDB rows (schema/001_core.sql, table jobs).
 *
 * Responders enqueue and cancel; engines claim, heartbeat, report progress,
 * complete, fail (with retry and backoff) or release. A job whose lease
 * lapsed goes back to the queue until its attempts run out; then it fails
 * with its last error kept. Every function takes the caller's dx_db (one per
 * thread) and leaves no transaction open when it returns.
 *
 * Status strings: queued, running, completed, failed, cancelled. */
#ifndef DX_JOBS_H
#define DX_JOBS_H

#include "dx_db.h"
#include "dx_util.h"

typedef struct {
  char id[DX_UUID_LEN];
  char user_id[DX_UUID_LEN];
  char track_id[DX_UUID_LEN]; /* empty when the job has no track */
  char type[32];
  char *params_json;          /* malloc'd, "{}" when none; freed by dx_job_clear */
  int attempts;               /* including the current one */
  int max_attempts;
} dx_job;

void dx_job_clear(dx_job *job); /* frees params_json */

/* Insert a queued job; id_out receives its id. params_json may be NULL. */
dx_status dx_job_enqueue(dx_db *db, const char *user_id, const char *track_id, const char *type,
                         const char *params_json, int max_attempts, char id_out[DX_UUID_LEN], dx_errbuf *err);

/* Send a wake-up datagram to demixd's socket. A hint only: failures are ignored. */
void dx_job_wake(const char *engine_socket);

/* Cancel: a queued job becomes cancelled at once; a running one gets
 * cancel_requested and its worker stops at its next progress step.
 * DX_ERR_NOT_FOUND for an unknown id (or another user's, when user_id is
 * non-NULL); DX_ERR_EXISTS when the job has already finished. */
dx_status dx_job_cancel(dx_db *db, const char *job_id, const char *user_id, dx_errbuf *err);

/* Claim the oldest runnable job of one of types (NULL-terminated; NULL for
 * any) with SELECT ... FOR UPDATE SKIP LOCKED, mark it running under owner
 * with a lease, and count the attempt. DX_ERR_NOT_FOUND when none. */
dx_status dx_job_claim(dx_db *db, const char *owner, int lease_seconds, const char *const *types, dx_job *out,
                       dx_errbuf *err);

/* Renew the lease and store progress (0-100, or -1 to leave it). Sets
 * *cancel_requested. DX_ERR_CANCELLED-free: returns DX_ERR_NOT_FOUND when
 * the lease was lost (another engine took the job over, or it was deleted). */
dx_status dx_job_heartbeat(dx_db *db, const dx_job *job, const char *owner, int lease_seconds, int progress,
                           int *cancel_requested, dx_errbuf *err);

/* Finish: completed with result_json (may be NULL). Only while owner holds the lease. */
dx_status dx_job_complete(dx_db *db, const dx_job *job, const char *owner, const char *result_json, dx_errbuf *err);

/* Fail this attempt with a readable error. With retryable and attempts left,
 * the job is queued again after backoff_seconds * 2^(attempts-1); otherwise
 * it ends failed. */
dx_status dx_job_fail(dx_db *db, const dx_job *job, const char *owner, const char *error, int retryable,
                      int backoff_seconds, dx_errbuf *err);

/* Mark a running job cancelled (its worker noticed cancel_requested). */
dx_status dx_job_mark_cancelled(dx_db *db, const dx_job *job, const char *owner, dx_errbuf *err);

/* Give the job back to the queue without counting the attempt (clean shutdown). */
dx_status dx_job_release(dx_db *db, const dx_job *job, const char *owner, dx_errbuf *err);

/* Return running jobs whose lease lapsed to the queue (or fail them when
 * their attempts are spent). *count receives how many were touched. */
dx_status dx_job_requeue_lapsed(dx_db *db, int *count, dx_errbuf *err);

#endif
