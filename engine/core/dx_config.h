/* dx_config.h: demix configuration, one struct for every process.
 *
 * Sources, later ones winning: built-in defaults, the file named by
 * DEMIX_CONFIG (default var/demix.conf under DEMIX_HOME, if present), then
 * environment variables DEMIX_<KEY> (upper-case key). The file is `key = value`
 * lines; `#` starts a comment. Keys are the field names below.
 * Thread-safety: load once at start-up, then read-only. */
#ifndef DX_CONFIG_H
#define DX_CONFIG_H

#include "dx_error.h"

#define DX_CONFIG_STR 512

typedef struct {
  char home[DX_CONFIG_STR];          /* project root; default: cwd */
  char var_dir[DX_CONFIG_STR];       /* default: <home>/var */
  char storage_dir[DX_CONFIG_STR];   /* audio, stems, exports; default <var>/storage */
  char run_dir[DX_CONFIG_STR];       /* pids, sockets, tokens; default <var>/run */
  char model_dir[DX_CONFIG_STR];     /* checkpoints; default <var>/models */
  char models_base_url[DX_CONFIG_STR];
  char db_host[DX_CONFIG_STR];       /* empty: use db_socket */
  int db_port;
  char db_socket[DX_CONFIG_STR];     /* default <run>/mariadb.sock */
  char db_user[128];
  char db_password[128];
  char db_name[128];
  char engine_socket[DX_CONFIG_STR]; /* demixd wake-up datagram socket; default <run>/demixd.sock */
  char fcgi_socket[DX_CONFIG_STR];   /* default <run>/fcgi.sock */
  int http_port;                     /* nginx listen port, default 8080 */
  int fcgi_workers;                  /* default 4 */
  int fcgi_senders;                  /* streamed downloads sent at once beside the responders, default 64 */
  int engine_workers;                /* demixd worker threads, default 2 */
  long long max_upload_bytes;        /* default 200 MiB */
  int rate_auth_per_min;             /* api_auth: default 60 */
  int rate_heavy_per_min;            /* api_heavy: default 10 */
  int lease_seconds;                 /* job lease, default 30 */
  int heartbeat_seconds;             /* default 5 */
  int poll_ms;                       /* demixd poll interval, default 1000 */
  int max_attempts;                  /* default 3 */
  int retry_backoff_seconds;         /* first retry delay, doubles; default 5 */
  double max_track_seconds;          /* longest accepted audio, default 4 h */
  double shutdown_grace_seconds;     /* demixd: time running jobs get on SIGTERM, default 20 */
  char device[16];                   /* cpu | cuda | auto */
} dx_config;

/* Fill cfg from defaults, file and environment. err receives details of a
 * bad file line or value. */
dx_status dx_config_load(dx_config *cfg, dx_errbuf *err);

/* Set one key from a string (used by the loader and by tests). Returns
 * DX_ERR_CONFIG for an unknown key or a bad value. */
dx_status dx_config_set(dx_config *cfg, const char *key, const char *value, dx_errbuf *err);

#endif
