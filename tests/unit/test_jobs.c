/* test_jobs.c: the job queue library (engine/jobs).
 *
 * Without a database: the handler registry, retry classification, the
 * wake-up socket, parameter checks of enqueue and of the built-in handlers.
 * With DEMIX_TEST_DB=1 and a configured database holding the schema
 * (tests/integration/test_engine.py runs it so): enqueue, cancel, claim
 * order and type filter, lease guards, fail with backoff, release, lapsed
 * leases, and a worker running a handler end to end. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dx_job_runner.h"
#include "dx_test.h"

/* ---- without a database ---- */

static dx_status h_noop(dx_job_ctx *ctx, dx_errbuf *err) {
  (void)ctx;
  (void)err;
  return DX_OK;
}

DX_TEST(registry_lists_builtin_and_registered_types) {
  CHECK(dx_job_handler_find("probe") == dx_job_probe);
  CHECK(dx_job_handler_find("sleep") == dx_job_sleep);
  CHECK(dx_job_handler_find("nope") == NULL);
  CHECK(dx_job_register("Bad-Type", h_noop) == DX_ERR_INVALID);
  CHECK(dx_job_register("unit_noop", h_noop) == DX_OK);
  CHECK(dx_job_handler_find("unit_noop") == h_noop);
  int seen = 0, n = 0;
  for (const char *const *t = dx_job_types(); *t; t++, n++) seen += !strcmp(*t, "unit_noop") || !strcmp(*t, "probe");
  CHECK(seen == 2 && n >= 3);
}

DX_TEST(retryable_statuses) {
  CHECK(dx_job_status_retryable(DX_ERR_DB));
  CHECK(dx_job_status_retryable(DX_ERR_CUDA));
  CHECK(dx_job_status_retryable(DX_ERR_CUDNN));
  CHECK(!dx_job_status_retryable(DX_ERR_CORRUPT));
  CHECK(!dx_job_status_retryable(DX_ERR_NOT_FOUND));
  CHECK(!dx_job_status_retryable(DX_ERR_INVALID));
  CHECK(!dx_job_status_retryable(DX_OK));
}

DX_TEST(wake_socket_round_trip_and_stale_file) {
  char path[108];
  snprintf(path, sizeof path, "/tmp/dx_test_wake_%ld.sock", (long)getpid());
  unlink(path);
  int fd = -1;
  dx_errbuf err = {{0}};
  CHECK(dx_job_wake_listen(path, &fd, &err) == DX_OK && fd >= 0);
  CHECK(dx_job_wake_wait(fd, 10) == 0);
  dx_job_wake(path);
  dx_job_wake(path);
  CHECK(dx_job_wake_wait(fd, 1000) == 1);
  CHECK(dx_job_wake_wait(fd, 10) == 0); /* drained */
  int fd2 = -1;
  CHECK(dx_job_wake_listen(path, &fd2, &err) == DX_ERR_EXISTS && fd2 < 0); /* live: not stolen */
  close(fd);                                                                /* file left behind: stale */
  CHECK(dx_job_wake_listen(path, &fd2, &err) == DX_OK && fd2 >= 0);
  dx_job_wake(path);
  CHECK(dx_job_wake_wait(fd2, 1000) == 1);
  close(fd2);
  unlink(path);
  dx_job_wake(path); /* nobody there: ignored */
  dx_job_wake(NULL);
  CHECK(dx_job_wake_wait(-1, 5) == 0);
}

DX_TEST(enqueue_checks_arguments_before_the_database) {
  char id[DX_UUID_LEN] = "x";
  dx_errbuf err = {{0}};
  const char *user = "11111111-1111-4111-8111-111111111111";
  CHECK(dx_job_enqueue(NULL, "nope", NULL, "probe", NULL, 3, id, &err) == DX_ERR_INVALID && !id[0]);
  CHECK(dx_job_enqueue(NULL, user, "bad", "probe", NULL, 3, id, &err) == DX_ERR_INVALID);
  CHECK(dx_job_enqueue(NULL, user, NULL, "Probe!", NULL, 3, id, &err) == DX_ERR_INVALID);
  CHECK(dx_job_enqueue(NULL, user, NULL, "probe", "{\"a\":", 3, id, &err) == DX_ERR_PARSE);
  CHECK(dx_job_enqueue(NULL, user, NULL, "probe", "[1,2]", 3, id, &err) == DX_ERR_PARSE);
  CHECK(dx_job_enqueue(NULL, user, NULL, "probe", "{} x", 3, id, &err) == DX_ERR_PARSE);
}

DX_TEST(handlers_outside_a_worker) {
  dx_config cfg;
  memset(&cfg, 0, sizeof cfg);
  dx_job job;
  memset(&job, 0, sizeof job);
  strcpy(job.type, "sleep");
  job.attempts = 1;
  job.max_attempts = 3;
  dx_job_ctx ctx;
  dx_errbuf err = {{0}};

  job.params_json = "[]";
  CHECK(dx_job_ctx_init(&ctx, &cfg, NULL, NULL, &job, &err) == DX_ERR_PARSE);
  dx_job_ctx_clear(&ctx);

  job.params_json = "{\"seconds\": \"ten\"}";
  CHECK(dx_job_ctx_init(&ctx, &cfg, NULL, NULL, &job, &err) == DX_OK);
  CHECK(dx_job_sleep(&ctx, &err) == DX_ERR_INVALID && strstr(err.msg, "seconds"));
  dx_job_ctx_clear(&ctx);

  job.params_json = "{\"seconds\": 0.02, \"step\": 0.01, \"fail_attempts\": 1}";
  CHECK(dx_job_ctx_init(&ctx, &cfg, NULL, NULL, &job, &err) == DX_OK);
  CHECK(dx_job_progress(&ctx, 50) == DX_OK);
  CHECK(dx_job_sleep(&ctx, &err) == DX_ERR_BUSY);
  CHECK(ctx.retryable_ == 1);
  dx_job_ctx_clear(&ctx);

  job.attempts = 2;
  CHECK(dx_job_ctx_init(&ctx, &cfg, NULL, NULL, &job, &err) == DX_OK);
  CHECK(dx_job_sleep(&ctx, &err) == DX_OK);
  json_object *att = NULL;
  CHECK(dx_job_ctx_result(&ctx) && json_object_object_get_ex(dx_job_ctx_result(&ctx), "attempt", &att) &&
        json_object_get_int(att) == 2);
  dx_job_ctx_clear(&ctx);

  job.params_json = NULL; /* probe without a track fails at once */
  strcpy(job.type, "probe");
  CHECK(dx_job_ctx_init(&ctx, &cfg, NULL, NULL, &job, &err) == DX_OK);
  CHECK(dx_job_probe(&ctx, &err) == DX_ERR_INVALID && ctx.retryable_ == 0);
  dx_job_ctx_clear(&ctx);
}

/* ---- with a database ---- */

static dx_config g_cfg;
static dx_db *g_db;
static char g_user[DX_UUID_LEN], g_other[DX_UUID_LEN];

static int db_ready(void) {
  const char *on = getenv("DEMIX_TEST_DB");
  if (!on || strcmp(on, "1")) return 0;
  if (g_db) return 1;
  dx_errbuf err = {{0}};
  if (dx_config_load(&g_cfg, &err) != DX_OK || dx_db_open(&g_cfg, &g_db, &err) != DX_OK) {
    fprintf(stderr, "  database: %s\n", err.msg);
    return 0;
  }
  dx_uuid(g_user);
  dx_uuid(g_other);
  dx_db_exec(g_db, NULL, NULL, "INSERT INTO users (id, name) VALUES (%s, %s), (%s, %s)", g_user, g_user + 24,
             g_other, g_other + 24);
  return 1;
}

static const char *const UNIT_TYPES[] = {"unit_a", "unit_b", NULL};

static void clean(void) { dx_db_exec(g_db, NULL, NULL, "DELETE FROM jobs WHERE type LIKE 'unit\\_%%'"); }

static long long q_ll(const char *sql, const char *id) {
  long long v = -999;
  dx_db_query_ll(g_db, &v, NULL, sql, id);
  return v;
}

static int status_is(const char *id, const char *status) {
  long long v = 0;
  return dx_db_query_ll(g_db, &v, NULL, "SELECT COUNT(*) FROM jobs WHERE id = %s AND status = %s", id, status) ==
             DX_OK &&
         v == 1;
}

DX_TEST(db_enqueue_and_cancel) {
  if (!db_ready()) SKIP("DEMIX_TEST_DB=1 not set");
  clean();
  char id[DX_UUID_LEN], bad[DX_UUID_LEN];
  dx_errbuf err = {{0}};
  dx_uuid(bad);
  CHECK(dx_job_enqueue(g_db, g_user, bad, "unit_a", NULL, 3, id, &err) == DX_ERR_NOT_FOUND);
  CHECK(dx_job_enqueue(g_db, bad, NULL, "unit_a", NULL, 3, id, &err) == DX_ERR_NOT_FOUND);
  CHECK(dx_job_enqueue(g_db, g_user, NULL, "unit_a", NULL, 0, id, &err) == DX_OK && dx_uuid_valid(id));
  CHECK(status_is(id, "queued"));
  CHECK(q_ll("SELECT max_attempts FROM jobs WHERE id = %s", id) == 3);
  CHECK(q_ll("SELECT params = '{}' FROM jobs WHERE id = %s", id) == 1);
  CHECK(dx_job_cancel(g_db, id, g_other, &err) == DX_ERR_NOT_FOUND); /* another user's */
  CHECK(dx_job_cancel(g_db, bad, NULL, &err) == DX_ERR_NOT_FOUND);
  CHECK(dx_job_cancel(g_db, "nonsense", NULL, &err) == DX_ERR_NOT_FOUND);
  CHECK(dx_job_cancel(g_db, id, g_user, &err) == DX_OK);
  CHECK(status_is(id, "cancelled"));
  CHECK(q_ll("SELECT finished_at IS NOT NULL FROM jobs WHERE id = %s", id) == 1);
  CHECK(dx_job_cancel(g_db, id, g_user, &err) == DX_ERR_EXISTS);
}

DX_TEST(db_claim_order_types_and_lease_guards) {
  if (!db_ready()) SKIP("DEMIX_TEST_DB=1 not set");
  clean();
  char a[DX_UUID_LEN], b[DX_UUID_LEN];
  dx_errbuf err = {{0}};
  CHECK(dx_job_enqueue(g_db, g_user, NULL, "unit_a", "{\"n\": 1}", 3, a, &err) == DX_OK);
  usleep(5000);
  CHECK(dx_job_enqueue(g_db, g_user, NULL, "unit_b", NULL, 3, b, &err) == DX_OK);
  dx_job j, k;
  const char *only_b[] = {"unit_b", NULL}, *none[] = {"unit_z", NULL};
  CHECK(dx_job_claim(g_db, "h:1:0", 30, none, &j, &err) == DX_ERR_NOT_FOUND);
  CHECK(dx_job_claim(g_db, "h:1:0", 30, only_b, &j, &err) == DX_OK && !strcmp(j.id, b));
  dx_job_clear(&j);
  CHECK(dx_job_claim(g_db, "h:1:0", 30, UNIT_TYPES, &j, &err) == DX_OK && !strcmp(j.id, a));
  CHECK(j.attempts == 1 && j.max_attempts == 3 && !strcmp(j.params_json, "{\"n\": 1}") && !strcmp(j.user_id, g_user));
  CHECK(dx_job_claim(g_db, "h:1:1", 30, UNIT_TYPES, &k, &err) == DX_ERR_NOT_FOUND); /* b is running */
  CHECK(q_ll("SELECT lease_expires_at > UTC_TIMESTAMP(3) + INTERVAL 20 SECOND FROM jobs WHERE id = %s", a) == 1);

  int cancel = -1;
  CHECK(dx_job_heartbeat(g_db, &j, "other:1:0", 30, 10, &cancel, &err) == DX_ERR_NOT_FOUND);
  CHECK(dx_job_complete(g_db, &j, "other:1:0", NULL, &err) == DX_ERR_NOT_FOUND);
  CHECK(dx_job_heartbeat(g_db, &j, "h:1:0", 30, 42, &cancel, &err) == DX_OK && cancel == 0);
  CHECK(q_ll("SELECT progress FROM jobs WHERE id = %s", a) == 42);
  CHECK(dx_job_cancel(g_db, a, NULL, &err) == DX_OK && status_is(a, "running"));
  CHECK(dx_job_heartbeat(g_db, &j, "h:1:0", 30, -1, &cancel, &err) == DX_OK && cancel == 1);
  CHECK(q_ll("SELECT progress FROM jobs WHERE id = %s", a) == 42);
  CHECK(dx_job_mark_cancelled(g_db, &j, "h:1:0", &err) == DX_OK && status_is(a, "cancelled"));
  CHECK(dx_job_cancel(g_db, a, NULL, &err) == DX_ERR_EXISTS);
  CHECK(dx_job_heartbeat(g_db, &j, "h:1:0", 30, 50, &cancel, &err) == DX_ERR_NOT_FOUND);
  dx_job_clear(&j);
}

DX_TEST(db_fail_retry_backoff_release_and_lapse) {
  if (!db_ready()) SKIP("DEMIX_TEST_DB=1 not set");
  clean();
  char a[DX_UUID_LEN];
  dx_errbuf err = {{0}};
  dx_job j;
  CHECK(dx_job_enqueue(g_db, g_user, NULL, "unit_a", NULL, 2, a, &err) == DX_OK);
  /* attempt 1: transient failure, retried after the backoff */
  CHECK(dx_job_claim(g_db, "h:1:0", 30, UNIT_TYPES, &j, &err) == DX_OK && j.attempts == 1);
  CHECK(dx_job_fail(g_db, &j, "h:1:0", "db went away", 1, 100, &err) == DX_OK);
  dx_job_clear(&j);
  CHECK(status_is(a, "queued"));
  CHECK(q_ll("SELECT run_after > UTC_TIMESTAMP(3) + INTERVAL 90 SECOND FROM jobs WHERE id = %s", a) == 1);
  CHECK(q_ll("SELECT error = 'db went away' AND lease_owner IS NULL FROM jobs WHERE id = %s", a) == 1);
  CHECK(dx_job_claim(g_db, "h:1:0", 30, UNIT_TYPES, &j, &err) == DX_ERR_NOT_FOUND); /* not yet due */
  dx_db_exec(g_db, NULL, NULL, "UPDATE jobs SET run_after = UTC_TIMESTAMP(3) WHERE id = %s", a);
  /* attempt 2, released on shutdown: the attempt does not count */
  CHECK(dx_job_claim(g_db, "h:1:0", 30, UNIT_TYPES, &j, &err) == DX_OK && j.attempts == 2);
  CHECK(dx_job_release(g_db, &j, "h:1:0", &err) == DX_OK);
  dx_job_clear(&j);
  CHECK(status_is(a, "queued") && q_ll("SELECT attempts FROM jobs WHERE id = %s", a) == 1);
  /* attempt 2 again: its lease lapses; requeued, then the last attempt lapses: failed */
  CHECK(dx_job_claim(g_db, "h:1:0", 30, UNIT_TYPES, &j, &err) == DX_OK && j.attempts == 2);
  dx_job_clear(&j);
  int n = -1;
  CHECK(dx_job_requeue_lapsed(g_db, &n, &err) == DX_OK && n == 0);
  dx_db_exec(g_db, NULL, NULL, "UPDATE jobs SET lease_expires_at = UTC_TIMESTAMP(3) - INTERVAL 1 SECOND WHERE id = %s",
             a);
  CHECK(dx_job_requeue_lapsed(g_db, &n, &err) == DX_OK && n == 1);
  CHECK(status_is(a, "failed"));
  CHECK(q_ll("SELECT error LIKE 'lease expired after 2 attempts; last error: db went away' FROM jobs WHERE id = %s",
             a) == 1);

  /* a permanent failure ends at once; a lapsed lease with attempts left is requeued */
  char b[DX_UUID_LEN];
  CHECK(dx_job_enqueue(g_db, g_user, NULL, "unit_b", NULL, 3, b, &err) == DX_OK);
  CHECK(dx_job_claim(g_db, "h:1:0", 30, UNIT_TYPES, &j, &err) == DX_OK);
  dx_db_exec(g_db, NULL, NULL, "UPDATE jobs SET lease_expires_at = UTC_TIMESTAMP(3) - INTERVAL 1 SECOND WHERE id = %s",
             b);
  CHECK(dx_job_requeue_lapsed(g_db, &n, &err) == DX_OK && n == 1 && status_is(b, "queued"));
  CHECK(dx_job_fail(g_db, &j, "h:1:0", "late", 0, 0, &err) == DX_ERR_NOT_FOUND); /* lease lost */
  dx_job_clear(&j);
  CHECK(dx_job_claim(g_db, "h:1:0", 30, UNIT_TYPES, &j, &err) == DX_OK && j.attempts == 2);
  CHECK(dx_job_fail(g_db, &j, "h:1:0", "corrupt file", 0, 0, &err) == DX_OK);
  dx_job_clear(&j);
  CHECK(status_is(b, "failed") && q_ll("SELECT error = 'corrupt file' FROM jobs WHERE id = %s", b) == 1);
}

DX_TEST(db_cancel_all_of_a_user) {
  if (!db_ready()) SKIP("DEMIX_TEST_DB=1 not set");
  clean();
  char a1[DX_UUID_LEN], a2[DX_UUID_LEN], b[DX_UUID_LEN], other[DX_UUID_LEN];
  dx_errbuf err = {{0}};
  CHECK(dx_job_enqueue(g_db, g_user, NULL, "unit_a", NULL, 3, a1, &err) == DX_OK);
  CHECK(dx_job_enqueue(g_db, g_user, NULL, "unit_a", NULL, 3, a2, &err) == DX_OK);
  CHECK(dx_job_enqueue(g_db, g_user, NULL, "unit_b", NULL, 3, b, &err) == DX_OK);
  CHECK(dx_job_enqueue(g_db, g_other, NULL, "unit_a", NULL, 3, other, &err) == DX_OK);
  dx_job j;
  const char *only_a[] = {"unit_a", NULL};
  CHECK(dx_job_claim(g_db, "h:1:0", 30, only_a, &j, &err) == DX_OK && !strcmp(j.id, a1));
  long long q = -1, r = -1;
  CHECK(dx_job_cancel_all(g_db, g_user, "unit_a", &q, &r, &err) == DX_OK && q == 1 && r == 1);
  CHECK(status_is(a2, "cancelled") && status_is(a1, "running") && status_is(b, "queued") && status_is(other, "queued"));
  int cancel = 0;
  CHECK(dx_job_heartbeat(g_db, &j, "h:1:0", 30, 10, &cancel, &err) == DX_OK && cancel == 1);
  CHECK(dx_job_cancel_all(g_db, g_user, NULL, &q, &r, &err) == DX_OK && q == 1 && r == 0); /* a1 was asked already */
  CHECK(status_is(b, "cancelled") && status_is(other, "queued"));
  CHECK(dx_job_cancel_all(g_db, "nope", NULL, &q, &r, &err) == DX_ERR_INVALID);
  CHECK(dx_job_cancel_all(g_db, g_user, "Bad!", &q, &r, &err) == DX_ERR_INVALID);
  CHECK(dx_job_mark_cancelled(g_db, &j, "h:1:0", &err) == DX_OK);
  dx_job_clear(&j);
}

static long long turn_of(const char *id) { return q_ll("SELECT queue_turn FROM jobs WHERE id = %s", id); }

/* Users take turns: a user's queue of four does not hold back another
 * user's jobs queued after it. */
DX_TEST(db_users_take_turns) {
  if (!db_ready()) SKIP("DEMIX_TEST_DB=1 not set");
  clean();
  char a[4][DX_UUID_LEN], b[2][DX_UUID_LEN];
  dx_errbuf err = {{0}};
  for (int i = 0; i < 4; i++) CHECK(dx_job_enqueue(g_db, g_user, NULL, "unit_a", NULL, 3, a[i], &err) == DX_OK);
  for (int i = 1; i < 4; i++) CHECK(turn_of(a[i]) == turn_of(a[0]) + i);
  dx_job j;
  CHECK(dx_job_claim(g_db, "h:1:0", 30, UNIT_TYPES, &j, &err) == DX_OK && !strcmp(j.id, a[0]));
  CHECK(dx_job_complete(g_db, &j, "h:1:0", NULL, &err) == DX_OK);
  dx_job_clear(&j);
  usleep(5000);
  for (int i = 0; i < 2; i++) CHECK(dx_job_enqueue(g_db, g_other, NULL, "unit_b", NULL, 3, b[i], &err) == DX_OK);
  /* g_other starts at the turn being served: a[1]'s, or an older queued job's */
  CHECK(turn_of(b[0]) <= turn_of(a[1]) && turn_of(b[1]) == turn_of(b[0]) + 1);
  long long foreign = -1;
  dx_db_query_ll(g_db, &foreign, NULL, "SELECT COUNT(*) FROM jobs WHERE status = 'queued' AND type NOT LIKE 'unit\\_%%'");
  if (foreign == 0) CHECK(turn_of(b[0]) == turn_of(a[1]));
  /* one of each user per turn, the older job first within a turn */
  const char *want[] = {a[1], b[0], a[2], b[1], a[3]};
  int pos[5], n = 0;
  while (n < 5 && dx_job_claim(g_db, "h:1:0", 30, UNIT_TYPES, &j, &err) == DX_OK) {
    for (int k = 0; k < 5; k++)
      if (!strcmp(j.id, want[k])) pos[k] = n;
    n++;
    CHECK(dx_job_complete(g_db, &j, "h:1:0", NULL, &err) == DX_OK);
    dx_job_clear(&j);
  }
  CHECK(n == 5);
  CHECK(pos[1] < pos[2] && pos[3] < pos[4] && pos[0] < pos[2] && pos[2] < pos[4]);
  if (foreign == 0)
    for (int k = 0; k < 5; k++) CHECK(pos[k] == k);
  /* With nothing queued, the turn being served is the running job's: a
   * user with a job running queues one past it, another user at it. */
  char c[DX_UUID_LEN], d[DX_UUID_LEN], e[2][DX_UUID_LEN];
  CHECK(dx_job_enqueue(g_db, g_user, NULL, "unit_a", NULL, 3, c, &err) == DX_OK);
  dx_db_exec(g_db, NULL, NULL, "UPDATE jobs SET queue_turn = queue_turn + 50 WHERE id = %s", c);
  CHECK(dx_job_claim(g_db, "h:1:0", 30, UNIT_TYPES, &j, &err) == DX_OK && !strcmp(j.id, c));
  dx_job running = j;
  for (int i = 0; i < 2; i++) CHECK(dx_job_enqueue(g_db, g_other, NULL, "unit_b", NULL, 3, e[i], &err) == DX_OK);
  usleep(5000);
  CHECK(dx_job_enqueue(g_db, g_user, NULL, "unit_a", NULL, 3, d, &err) == DX_OK);
  CHECK(turn_of(d) == turn_of(c) + 1 && turn_of(e[1]) == turn_of(e[0]) + 1);
  if (foreign == 0) { /* e[0], then e[1] before d: both in c's next turn, e[1] older */
    CHECK(turn_of(e[0]) == turn_of(c));
    for (int i = 0; i < 2; i++) {
      CHECK(dx_job_claim(g_db, "h:1:1", 30, UNIT_TYPES, &j, &err) == DX_OK && !strcmp(j.id, e[i]));
      CHECK(dx_job_complete(g_db, &j, "h:1:1", NULL, &err) == DX_OK);
      dx_job_clear(&j);
    }
  }
  CHECK(dx_job_complete(g_db, &running, "h:1:0", NULL, &err) == DX_OK);
  dx_job_clear(&running);
}

static dx_status h_echo(dx_job_ctx *ctx, dx_errbuf *err) {
  json_object *v;
  if (!json_object_object_get_ex(ctx->params, "x", &v)) return dx_fail(err, DX_ERR_INVALID, "no x");
  for (int p = 0; p <= 100; p += 25)
    if (dx_job_progress(ctx, p) != DX_OK) return DX_ERR_CANCELLED;
  json_object *r = json_object_new_object();
  json_object_object_add(r, "x", json_object_get(v));
  json_object_object_add(r, "cpu", json_object_new_boolean(ctx->backend && ctx->backend->kind == DX_DEVICE_CPU));
  dx_job_set_result(ctx, r);
  return DX_OK;
}

static dx_status h_cuda_fail(dx_job_ctx *ctx, dx_errbuf *err) {
  (void)ctx;
  return dx_fail(err, DX_ERR_CUDA, "simulated kernel launch failure");
}

static dx_status h_wait_abort(dx_job_ctx *ctx, dx_errbuf *err) {
  (void)err;
  dx_job_worker *w = ctx->worker_;
  dx_job_worker_abort(w); /* as the daemon does at the end of its grace period */
  return dx_job_progress(ctx, 10);
}

DX_TEST(db_worker_runs_handlers) {
  if (!db_ready()) SKIP("DEMIX_TEST_DB=1 not set");
  clean();
  CHECK(dx_job_register("unit_echo", h_echo) == DX_OK);
  CHECK(dx_job_register("unit_cuda", h_cuda_fail) == DX_OK);
  CHECK(dx_job_register("unit_abort", h_wait_abort) == DX_OK);
  dx_config cfg = g_cfg;
  snprintf(cfg.device, sizeof cfg.device, "cpu");
  cfg.retry_backoff_seconds = 0;
  dx_job_worker *w = NULL;
  dx_errbuf err = {{0}};
  static const char *const types[] = {"unit_echo", "unit_cuda", "unit_abort", NULL};
  dx_job_worker_params p = {.index = 3, .hostname = "unit", .types = types};
  CHECK(dx_job_worker_open(&cfg, &p, &w, &err) == DX_OK);
  if (!w) return;
  char owner[64];
  snprintf(owner, sizeof owner, "unit:%ld:3", (long)getpid());
  CHECK(!strcmp(dx_job_worker_owner(w), owner));

  char e1[DX_UUID_LEN], e2[DX_UUID_LEN], c1[DX_UUID_LEN], a1[DX_UUID_LEN];
  CHECK(dx_job_enqueue(g_db, g_user, NULL, "unit_echo", "{\"x\": [1, \"two\"]}", 3, e1, &err) == DX_OK);
  int ran = 0;
  CHECK(dx_job_worker_run_next(w, &ran, &err) == DX_OK && ran == 1);
  CHECK(status_is(e1, "completed"));
  CHECK(q_ll("SELECT JSON_EXTRACT(result, '$.x[1]') = 'two' AND JSON_EXTRACT(result, '$.cpu') = true"
             " AND progress = 100 FROM jobs WHERE id = %s",
             e1) == 1);
  CHECK(dx_job_worker_run_next(w, &ran, &err) == DX_OK && ran == 0);

  CHECK(dx_job_enqueue(g_db, g_user, NULL, "unit_echo", NULL, 3, e2, &err) == DX_OK); /* bad params: no retry */
  CHECK(dx_job_worker_run_next(w, &ran, &err) == DX_OK && ran == 1);
  CHECK(status_is(e2, "failed") && q_ll("SELECT attempts = 1 AND error = 'no x' FROM jobs WHERE id = %s", e2) == 1);

  CHECK(dx_job_enqueue(g_db, g_user, NULL, "unit_cuda", NULL, 2, c1, &err) == DX_OK); /* transient: retried */
  CHECK(dx_job_worker_run_next(w, &ran, &err) == DX_OK && ran == 1);
  CHECK(status_is(c1, "queued"));
  CHECK(dx_job_worker_backend(w) != NULL); /* reopened after the CUDA-class error */
  CHECK(dx_job_worker_run_next(w, &ran, &err) == DX_OK && ran == 1);
  CHECK(status_is(c1, "failed") && q_ll("SELECT attempts FROM jobs WHERE id = %s", c1) == 2);

  CHECK(dx_job_enqueue(g_db, g_user, NULL, "unit_abort", NULL, 3, a1, &err) == DX_OK); /* shutdown: released */
  CHECK(dx_job_worker_run_next(w, &ran, &err) == DX_OK && ran == 1);
  CHECK(status_is(a1, "queued") && q_ll("SELECT attempts FROM jobs WHERE id = %s", a1) == 0);
  CHECK(dx_job_worker_run_next(w, &ran, &err) == DX_OK && ran == 0); /* aborted workers claim nothing */
  dx_job_worker_close(w);
  clean();
  dx_db_exec(g_db, NULL, NULL, "DELETE FROM users WHERE id IN (%s, %s)", g_user, g_other);
}

DX_TEST_MAIN(DX_T(registry_lists_builtin_and_registered_types), DX_T(retryable_statuses),
             DX_T(wake_socket_round_trip_and_stale_file), DX_T(enqueue_checks_arguments_before_the_database),
             DX_T(handlers_outside_a_worker), DX_T(db_enqueue_and_cancel), DX_T(db_claim_order_types_and_lease_guards),
             DX_T(db_fail_retry_backoff_release_and_lapse), DX_T(db_cancel_all_of_a_user), DX_T(db_users_take_turns),
             DX_T(db_worker_runs_handlers))
