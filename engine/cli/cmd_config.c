/* cmd_config.c: `demix config`: load the configuration exactly as every
 * demix program does (file, then DEMIX_<KEY> environment) and print the
 * resolved values as `key = value` lines (the database password only as
 * "(set)"). Exit status 1 with the reason when the configuration does not
 * load: tools/up uses it to check a demix.conf before starting anything.
 * Single-threaded. */
#include <stdio.h>
#include <string.h>

#include "dx_cli.h"

int dx_cmd_config(int argc, char **argv) {
  if (argc > 1) {
    fprintf(stderr, "usage: demix config\n");
    return 2;
  }
  (void)argv;
  dx_config c;
  if (dx_cli_config(&c)) return 1;
  printf("home = %s\nvar_dir = %s\nstorage_dir = %s\nrun_dir = %s\nmodel_dir = %s\n", c.home, c.var_dir,
         c.storage_dir, c.run_dir, c.model_dir);
  printf("db_host = %s\ndb_port = %d\ndb_socket = %s\ndb_user = %s\ndb_password = %s\ndb_name = %s\n", c.db_host,
         c.db_port, c.db_socket, c.db_user, *c.db_password ? "(set)" : "", c.db_name);
  printf("engine_socket = %s\nfcgi_socket = %s\nhttp_port = %d\nfcgi_workers = %d\nengine_workers = %d\n",
         c.engine_socket, c.fcgi_socket, c.http_port, c.fcgi_workers, c.engine_workers);
  printf("max_upload_bytes = %lld\nrate_auth_per_min = %d\nrate_heavy_per_min = %d\n", c.max_upload_bytes,
         c.rate_auth_per_min, c.rate_heavy_per_min);
  printf("lease_seconds = %d\nheartbeat_seconds = %d\npoll_ms = %d\nmax_attempts = %d\nretry_backoff_seconds = %d\n",
         c.lease_seconds, c.heartbeat_seconds, c.poll_ms, c.max_attempts, c.retry_backoff_seconds);
  printf("max_track_seconds = %g\ndevice = %s\n", c.max_track_seconds, c.device);
  return 0;
}
