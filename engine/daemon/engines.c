/* engines.c: demixd's row in table engines and its pid file (see dx_daemon.h).
 * Threading: demixd's main thread only. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dx_daemon.h"

#ifndef DEMIX_VERSION
#define DEMIX_VERSION "0"
#endif

static int pid_alive(long pid) { return pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM); }

static dx_status insert_row(dx_db *db, const dx_engine_row *row, int running, dx_errbuf *err) {
  return dx_db_exec(db, NULL, err,
                    "INSERT INTO engines (id, hostname, pid, device, gpu, workers, running, job_types, version,"
                    " started_at, last_seen) VALUES (%s, %s, %d, %s, %s, %d, %d, %s, %s, UTC_TIMESTAMP(3),"
                    " UTC_TIMESTAMP(3))",
                    row->id, row->hostname, (int)getpid(), row->device, row->gpu, row->workers, running,
                    row->job_types ? row->job_types : "", DEMIX_VERSION);
}

dx_status dx_engine_register(dx_db *db, dx_engine_row *row, dx_errbuf *err) {
  dx_status st = dx_uuid(row->id);
  if (st != DX_OK) return dx_fail(err, st, "cannot make an engine id");
  if (gethostname(row->hostname, sizeof row->hostname) != 0) snprintf(row->hostname, sizeof row->hostname, "localhost");
  row->hostname[sizeof row->hostname - 1] = 0;

  /* Engines of this host whose process is gone (killed, crashed). */
  MYSQL_RES *res = NULL;
  st = dx_db_query(db, &res, err, "SELECT id, pid FROM engines WHERE hostname = %s", row->hostname);
  if (st != DX_OK) return st;
  MYSQL_ROW r;
  char dead[64][DX_UUID_LEN];
  int ndead = 0;
  while ((r = mysql_fetch_row(res)) && ndead < 64)
    if (r[0] && r[1] && !pid_alive(atol(r[1])) && strlen(r[0]) < DX_UUID_LEN) strcpy(dead[ndead++], r[0]);
  mysql_free_result(res);
  for (int i = 0; i < ndead; i++) dx_db_exec(db, NULL, NULL, "DELETE FROM engines WHERE id = %s", dead[i]);
  dx_db_exec(db, NULL, NULL, "DELETE FROM engines WHERE last_seen < UTC_TIMESTAMP(3) - INTERVAL 1 DAY");
  return insert_row(db, row, 0, err);
}

dx_status dx_engine_heartbeat(dx_db *db, dx_engine_row *row, int running, dx_errbuf *err) {
  uint64_t n = 0;
  dx_status st = dx_db_exec(db, &n, err, "UPDATE engines SET last_seen = UTC_TIMESTAMP(3), running = %d WHERE id = %s",
                            running, row->id);
  if (st == DX_OK && n == 0) st = insert_row(db, row, running, err);
  return st;
}

dx_status dx_engine_unregister(dx_db *db, const dx_engine_row *row, dx_errbuf *err) {
  return dx_db_exec(db, NULL, err, "DELETE FROM engines WHERE id = %s", row->id);
}

static long pidfile_read(const char *path) {
  char *data = NULL;
  size_t n = 0;
  if (dx_read_file(path, &data, &n) != DX_OK) return 0;
  long pid = strtol(data, NULL, 10);
  free(data);
  return pid;
}

dx_status dx_pidfile_write(const char *path, dx_errbuf *err) {
  long other = pidfile_read(path);
  if (other > 0 && other != (long)getpid() && pid_alive(other))
    return dx_fail(err, DX_ERR_EXISTS, "%s names a running process (pid %ld)", path, other);
  char buf[32];
  int n = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
  dx_status st = dx_write_file_atomic(path, buf, (size_t)n);
  if (st != DX_OK) return dx_fail(err, st, "cannot write pid file %s", path);
  return DX_OK;
}

void dx_pidfile_remove(const char *path) {
  if (pidfile_read(path) == (long)getpid()) unlink(path);
}
