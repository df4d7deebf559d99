/* dx_daemon.h: demixd's internal pieces: its row in table engines
 * (schema/002_engines.sql) and its pid file.
 * Threading: called from demixd's main thread only. */
#ifndef DX_DAEMON_H
#define DX_DAEMON_H

#include "dx_db.h"
#include "dx_util.h"

typedef struct {
  char id[DX_UUID_LEN];
  char hostname[256];
  const char *device; /* "cpu" or "cuda" */
  const char *gpu;    /* GPU name or NULL */
  int workers;
  const char *job_types; /* comma-separated */
} dx_engine_row;

/* Remove rows of engines that are gone (same host, dead pid; or silent for a
 * day) and insert this engine's row. */
dx_status dx_engine_register(dx_db *db, dx_engine_row *row, dx_errbuf *err);
/* Renew last_seen and the running-job count; re-inserts a row someone removed. */
dx_status dx_engine_heartbeat(dx_db *db, dx_engine_row *row, int running, dx_errbuf *err);
/* Delete this engine's row (clean exit). */
dx_status dx_engine_unregister(dx_db *db, const dx_engine_row *row, dx_errbuf *err);

/* Write our pid to path atomically. DX_ERR_EXISTS when path names another
 * live process. */
dx_status dx_pidfile_write(const char *path, dx_errbuf *err);
/* Remove path if it still holds our pid. */
void dx_pidfile_remove(const char *path);

#endif
