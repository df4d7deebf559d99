/* dx_jobs.h: the job queue on MariaDB rows (schema/001_core.sql, table jobs).
 *
 * Responders enqueue and cancel; engines claim, heartbeat, report progress,
 * complete, fail (with retry and backoff) or release. A job whose lease
 * lapsed goes back to the queue until its attempts run out; then it fails
 * with its last error kept. Every function takes the caller's dx_db (one per
 * thread) and leaves no transaction open when it returns.
 *
 * Status strings: queued, running, completed, failed, cancelled.
 *
 * Ownership: every engine-side call after the claim is guarded by
 * (id, lease_owner, status 'running', attempts), so a worker that lost its
 * lease (it lapsed and another engine took the job) changes nothing and gets
 * DX_ERR_NOT_FOUND. Times are written with UTC_TIMESTAMP(3).
 * Threading: any thread, each with its own dx_db. */
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

/* Insert a queued job; id_out receives its id. Engines take jobs in turns,
 * one per user per turn (schema/007_job_turns.sql): the job's turn is the
 * later of the turn being served and one past its user's latest queued or
 * running job, so a user's thousandth job waits for the others' first ones
 * and not the reverse. Inside a caller's transaction, a run of enqueues for
 * one user takes consecutive turns. params_json may be NULL
 * (stored as "{}"); otherwise it must be a JSON object (DX_ERR_PARSE, checked
 * with json-c). type is [a-z0-9_], 1-31 chars (DX_ERR_INVALID). track_id may
 * be NULL or "". max_attempts <= 0 means 3. DX_ERR_NOT_FOUND when user_id or
 * track_id names no row; DX_ERR_DB on other database errors. */
dx_status dx_job_enqueue(dx_db *db, const char *user_id, const char *track_id, const char *type,
                         const char *params_json, int max_attempts, char id_out[DX_UUID_LEN], dx_errbuf *err);

/* Send a one-byte wake-up datagram to demixd's socket (AF_UNIX SOCK_DGRAM,
 * non-blocking). A hint only: every failure is ignored. */
void dx_job_wake(const char *engine_socket);

/* Engine side of the wake-up: bind path as a non-blocking datagram socket.
 * A stale socket file (nobody receiving) is removed first; when a live
 * engine already receives there, DX_ERR_EXISTS (the caller polls only).
 * *fd_out receives the socket; close it and unlink path when done. */
dx_status dx_job_wake_listen(const char *path, int *fd_out, dx_errbuf *err);
/* Wait up to timeout_ms for a datagram on fd (fd < 0: just sleep) and drain
 * what is queued. Returns 1 when woken by a datagram, 0 on timeout or signal. */
int dx_job_wake_wait(int fd, int timeout_ms);

/* Cancel: a queued job becomes cancelled at once; a running one gets
 * cancel_requested and its worker stops at its next progress step.
 * DX_ERR_NOT_FOUND for an unknown id (or another user's, when user_id is
 * non-NULL); DX_ERR_EXISTS when the job has already finished; DX_ERR_BUSY in
 * the rare case the job kept changing state under it (try again). */
dx_status dx_job_cancel(dx_db *db, const char *job_id, const char *user_id, dx_errbuf *err);
/* Cancel every unfinished job of user_id (of type, when not NULL) as
 * dx_job_cancel does one: *queued receive how many were cancelled at once,
 * *running how many were asked to stop. */
dx_status dx_job_cancel_all(dx_db *db, const char *user_id, const char *type, long long *queued, long long *running,
                            dx_errbuf *err);

/* Claim the runnable job (status queued, run_after <= now) of the lowest
 * turn, the oldest of that turn (see dx_job_enqueue), of one of
 * types (NULL-terminated; NULL for any) with SELECT ... FOR UPDATE SKIP
 * LOCKED in one READ COMMITTED transaction, mark it running under owner with
 * a lease of lease_seconds, set started_at and count the attempt (out->attempts
 * is the new count). DX_ERR_NOT_FOUND when none; the caller owns out
 * (dx_job_clear). */
dx_status dx_job_claim(dx_db *db, const char *owner, int lease_seconds, const char *const *types, dx_job *out,
                       dx_errbuf *err);

/* Renew the lease and store progress (0-100, or -1 to leave it). Sets
 * *cancel_requested (may be NULL). Never returns DX_ERR_CANCELLED: returns
 * DX_ERR_NOT_FOUND when the lease was lost (another engine took the job
 * over, or it was deleted). */
dx_status dx_job_heartbeat(dx_db *db, const dx_job *job, const char *owner, int lease_seconds, int progress,
                           int *cancel_requested, dx_errbuf *err);

/* Finish: completed with result_json (may be NULL). Only while owner holds the lease. */
dx_status dx_job_complete(dx_db *db, const dx_job *job, const char *owner, const char *result_json, dx_errbuf *err);

/* Fail this attempt with a readable error (stored in jobs.error). With
 * retryable and attempts left, the job is queued again after
 * backoff_seconds * 2^(attempts-1) (capped at one hour); otherwise it ends
 * failed. A job whose cancel was requested ends cancelled instead. */
dx_status dx_job_fail(dx_db *db, const dx_job *job, const char *owner, const char *error, int retryable,
                      int backoff_seconds, dx_errbuf *err);

/* Mark a running job cancelled (its worker noticed cancel_requested). */
dx_status dx_job_mark_cancelled(dx_db *db, const dx_job *job, const char *owner, dx_errbuf *err);

/* Give the job back to the queue without counting the attempt (clean
 * shutdown); a job whose cancel was requested ends cancelled instead. */
dx_status dx_job_release(dx_db *db, const dx_job *job, const char *owner, dx_errbuf *err);

/* Return running jobs whose lease lapsed to the queue (or fail them with
 * "lease expired after N attempts", the previous error appended, when their
 * attempts are spent; cancel them when a cancel was requested). *count
 * (may be NULL) receives how many were touched. */
dx_status dx_job_requeue_lapsed(dx_db *db, int *count, dx_errbuf *err);

#endif
