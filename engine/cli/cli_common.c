/* cli_common.c: configuration, database and option helpers for the `demix`
 * subcommands (see dx_cli.h). Single-threaded. */
#include "dx_cli.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void dx_cli_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("demix: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

int dx_cli_config(dx_config *cfg) {
  dx_errbuf err = {{0}};
  dx_status st = dx_config_load(cfg, &err);
  if (st != DX_OK) {
    dx_cli_error("configuration: %s", *err.msg ? err.msg : dx_strerror(st));
    return 1;
  }
  return 0;
}

int dx_cli_open_db(dx_config *cfg, dx_db **db) {
  *db = NULL;
  if (dx_cli_config(cfg)) return 1;
  dx_errbuf err = {{0}};
  dx_status st = dx_db_open(cfg, db, &err);
  if (st != DX_OK) {
    dx_cli_error("%s", *err.msg ? err.msg : dx_strerror(st));
    return 1;
  }
  return 0;
}

const char *dx_cli_opt(int argc, char **argv, const char *name, int *bad) {
  size_t n = strlen(name);
  for (int i = 1; i < argc; i++) {
    if (strncmp(argv[i], name, n) != 0) continue;
    if (argv[i][n] == '=') return argv[i] + n + 1;
    if (argv[i][n] != 0) continue;
    if (i + 1 < argc) return argv[i + 1];
    *bad = 1;
    return NULL;
  }
  return NULL;
}
