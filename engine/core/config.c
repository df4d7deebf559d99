/* config.c: defaults, file and environment for dx_config (see dx_config.h). */
#include "dx_config.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef enum { K_STR, K_INT, K_LL, K_DBL } key_kind;

typedef struct {
  const char *name;
  key_kind kind;
  size_t off;
  size_t size;
} key_def;

#define S(f) {#f, K_STR, offsetof(dx_config, f), sizeof(((dx_config *)0)->f)}
#define I(f) {#f, K_INT, offsetof(dx_config, f), sizeof(int)}
#define L(f) {#f, K_LL, offsetof(dx_config, f), sizeof(long long)}
#define D(f) {#f, K_DBL, offsetof(dx_config, f), sizeof(double)}
static const key_def keys[] = {
    S(home), S(var_dir), S(storage_dir), S(run_dir), S(model_dir), S(models_base_url),
    S(db_host), I(db_port), S(db_socket), S(db_user), S(db_password), S(db_name),
    S(engine_socket), S(fcgi_socket), I(http_port), I(fcgi_workers), I(fcgi_senders), I(engine_workers),
    L(max_upload_bytes), I(rate_auth_per_min), I(rate_heavy_per_min), I(lease_seconds),
    I(heartbeat_seconds), I(poll_ms), I(max_attempts), I(retry_backoff_seconds),
    D(max_track_seconds), D(shutdown_grace_seconds), S(device),
};
#undef S
#undef I
#undef L
#undef D

dx_status dx_config_set(dx_config *cfg, const char *key, const char *value, dx_errbuf *err) {
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
    const key_def *k = &keys[i];
    if (strcmp(k->name, key) != 0) continue;
    char *p = (char *)cfg + k->off, *end = NULL;
    errno = 0;
    switch (k->kind) {
    case K_STR:
      if (strlen(value) >= k->size) return dx_fail(err, DX_ERR_CONFIG, "%s: value too long", key);
      strcpy(p, value);
      return DX_OK;
    case K_INT: {
      long v = strtol(value, &end, 10);
      if (errno || end == value || *end || v < 0 || v > 1000000000L)
        return dx_fail(err, DX_ERR_CONFIG, "%s: not a non-negative integer: %s", key, value);
      *(int *)p = (int)v;
      return DX_OK;
    }
    case K_LL: {
      long long v = strtoll(value, &end, 10);
      if (errno || end == value || *end || v < 0)
        return dx_fail(err, DX_ERR_CONFIG, "%s: not a non-negative integer: %s", key, value);
      *(long long *)p = v;
      return DX_OK;
    }
    case K_DBL: {
      double v = strtod(value, &end);
      if (errno || end == value || *end || v < 0)
        return dx_fail(err, DX_ERR_CONFIG, "%s: not a non-negative number: %s", key, value);
      *(double *)p = v;
      return DX_OK;
    }
    }
  }
  return dx_fail(err, DX_ERR_CONFIG, "unknown configuration key: %s", key);
}

static char *trim(char *s) {
  while (isspace((unsigned char)*s)) s++;
  char *e = s + strlen(s);
  while (e > s && isspace((unsigned char)e[-1])) *--e = 0;
  return s;
}

static dx_status load_file(dx_config *cfg, const char *path, int required, dx_errbuf *err) {
  FILE *f = fopen(path, "r");
  if (!f) return required ? dx_fail(err, DX_ERR_CONFIG, "cannot open %s", path) : DX_OK;
  char line[2048];
  int lineno = 0;
  dx_status st = DX_OK;
  while (st == DX_OK && fgets(line, sizeof line, f)) {
    lineno++;
    char *hash = strchr(line, '#');
    if (hash) *hash = 0;
    char *s = trim(line);
    if (!*s) continue;
    char *eq = strchr(s, '=');
    if (!eq) {
      st = dx_fail(err, DX_ERR_CONFIG, "%s:%d: expected key = value", path, lineno);
      break;
    }
    *eq = 0;
    st = dx_config_set(cfg, trim(s), trim(eq + 1), err);
  }
  fclose(f);
  return st;
}

static void join(char *dst, size_t n, const char *a, const char *b) {
  if (snprintf(dst, n, "%s/%s", a, b) >= (int)n) dst[0] = 0; /* over-long: empty, later opens fail clearly */
}

dx_status dx_config_load(dx_config *cfg, dx_errbuf *err) {
  memset(cfg, 0, sizeof *cfg);
  const char *home = getenv("DEMIX_HOME");
  if (home && *home) snprintf(cfg->home, sizeof cfg->home, "%s", home);
  else if (!getcwd(cfg->home, sizeof cfg->home)) return dx_fail(err, DX_ERR_CONFIG, "getcwd failed");
  snprintf(cfg->db_user, sizeof cfg->db_user, "demix");
  snprintf(cfg->db_name, sizeof cfg->db_name, "demix");
  snprintf(cfg->models_base_url, sizeof cfg->models_base_url, "https://dl.fbaipublicfiles.com/demucs");
  snprintf(cfg->device, sizeof cfg->device, "auto");
  cfg->db_port = 3306;
  cfg->http_port = 8080;
  cfg->fcgi_workers = 4;
  cfg->fcgi_senders = 64;
  cfg->engine_workers = 2;
  cfg->max_upload_bytes = 200LL << 20;
  cfg->rate_auth_per_min = 60;
  cfg->rate_heavy_per_min = 10;
  cfg->lease_seconds = 30;
  cfg->heartbeat_seconds = 5;
  cfg->poll_ms = 1000;
  cfg->max_attempts = 3;
  cfg->retry_backoff_seconds = 5;
  cfg->max_track_seconds = 4 * 3600.0;
  cfg->shutdown_grace_seconds = 20.0;

  /* File, then environment; paths derived from var_dir are filled last so a
   * file that sets only var_dir moves them all. */
  char path[DX_CONFIG_STR + 32];
  const char *file = getenv("DEMIX_CONFIG");
  dx_status st;
  if (file && *file) st = load_file(cfg, file, 1, err);
  else {
    join(path, sizeof path, cfg->home, "var/demix.conf");
    st = load_file(cfg, path, 0, err);
  }
  if (st != DX_OK) return st;
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
    char env[96] = "DEMIX_";
    size_t j = 6;
    for (const char *c = keys[i].name; *c && j + 1 < sizeof env; c++) env[j++] = (char)toupper((unsigned char)*c);
    env[j] = 0;
    const char *v = getenv(env);
    if (v && (st = dx_config_set(cfg, keys[i].name, v, err)) != DX_OK) return st;
  }
  if (!*cfg->var_dir) join(cfg->var_dir, sizeof cfg->var_dir, cfg->home, "var");
  if (!*cfg->storage_dir) join(cfg->storage_dir, sizeof cfg->storage_dir, cfg->var_dir, "storage");
  if (!*cfg->run_dir) join(cfg->run_dir, sizeof cfg->run_dir, cfg->var_dir, "run");
  if (!*cfg->model_dir) join(cfg->model_dir, sizeof cfg->model_dir, cfg->var_dir, "models");
  if (!*cfg->db_socket && !*cfg->db_host) join(cfg->db_socket, sizeof cfg->db_socket, cfg->run_dir, "mariadb.sock");
  if (!*cfg->engine_socket) join(cfg->engine_socket, sizeof cfg->engine_socket, cfg->run_dir, "demixd.sock");
  if (!*cfg->fcgi_socket) join(cfg->fcgi_socket, sizeof cfg->fcgi_socket, cfg->run_dir, "fcgi.sock");
  if (strcmp(cfg->device, "cpu") && strcmp(cfg->device, "cuda") && strcmp(cfg->device, "auto"))
    return dx_fail(err, DX_ERR_CONFIG, "device must be cpu, cuda or auto, not %s", cfg->device);
  return DX_OK;
}
