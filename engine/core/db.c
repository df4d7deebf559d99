/* db.c: MariaDB connection and escaped query formatting (see dx_db.h). */
#include "dx_db.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct dx_db {
  MYSQL *my;
};

typedef struct {
  char *buf;
  size_t len, cap;
  int bad;
} sbuf;

static void sb_reserve(sbuf *b, size_t extra) {
  if (b->bad || b->len + extra + 1 <= b->cap) return;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < b->len + extra + 1) cap *= 2;
  char *p = realloc(b->buf, cap);
  if (!p) { b->bad = 1; return; }
  b->buf = p;
  b->cap = cap;
}

static void sb_put(sbuf *b, const char *s, size_t n) {
  sb_reserve(b, n);
  if (b->bad) return;
  memcpy(b->buf + b->len, s, n);
  b->len += n;
  b->buf[b->len] = 0;
}

static void sb_printf(sbuf *b, const char *fmt, ...) {
  char tmp[64];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n > 0) sb_put(b, tmp, (size_t)n);
}

/* Expand fmt with escaping; returns malloc'd SQL or NULL (err filled). */
static char *format_sql(MYSQL *my, dx_errbuf *err, const char *fmt, va_list ap) {
  sbuf b = {0};
  sb_put(&b, "", 0);
  for (const char *p = fmt; *p && !b.bad; p++) {
    if (*p != '%') { sb_put(&b, p, 1); continue; }
    p++;
    if (*p == 's') {
      const char *s = va_arg(ap, const char *);
      if (!s) { sb_put(&b, "NULL", 4); continue; }
      size_t n = strlen(s);
      sb_reserve(&b, 2 * n + 3);
      if (b.bad) break;
      b.buf[b.len++] = '\'';
      b.len += mysql_real_escape_string(my, b.buf + b.len, s, (unsigned long)n);
      b.buf[b.len++] = '\'';
      b.buf[b.len] = 0;
    } else if (*p == 'd') sb_printf(&b, "%d", va_arg(ap, int));
    else if (*p == 'u') sb_printf(&b, "%u", va_arg(ap, unsigned));
    else if (*p == 'f') {
      double v = va_arg(ap, double);
      if (isfinite(v)) sb_printf(&b, "%.17g", v);
      else sb_put(&b, "NULL", 4);
    } else if (*p == 'l' && p[1] == 'l' && p[2] == 'd') { sb_printf(&b, "%lld", va_arg(ap, long long)); p += 2; }
    else if (*p == 'l' && p[1] == 'l' && p[2] == 'u') { sb_printf(&b, "%llu", va_arg(ap, unsigned long long)); p += 2; }
    else if (*p == 'I') {
      const char *s = va_arg(ap, const char *);
      for (const char *c = s; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '_')) {
          free(b.buf);
          dx_fail(err, DX_ERR_INVALID, "bad SQL identifier");
          return NULL;
        }
      sb_put(&b, "`", 1);
      sb_put(&b, s, strlen(s));
      sb_put(&b, "`", 1);
    } else if (*p == '%') sb_put(&b, "%", 1);
    else {
      free(b.buf);
      dx_fail(err, DX_ERR_INTERNAL, "bad SQL format conversion %%%c", *p ? *p : '?');
      return NULL;
    }
  }
  if (b.bad) {
    free(b.buf);
    dx_fail(err, DX_ERR_NOMEM, "out of memory building SQL");
    return NULL;
  }
  return b.buf;
}

dx_status dx_db_open(const dx_config *cfg, dx_db **out, dx_errbuf *err) {
  *out = NULL;
  dx_db *db = calloc(1, sizeof *db);
  if (!db) return DX_ERR_NOMEM;
  db->my = mysql_init(NULL);
  if (!db->my) { free(db); return DX_ERR_NOMEM; }
  my_bool reconnect = 1;
  unsigned timeout = 5;
  mysql_options(db->my, MYSQL_OPT_RECONNECT, &reconnect);
  mysql_options(db->my, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
  mysql_options(db->my, MYSQL_SET_CHARSET_NAME, "utf8mb4");
  /* Every time is UTC, also after a reconnect (column defaults use the session zone). */
  mysql_options(db->my, MYSQL_INIT_COMMAND, "SET time_zone = '+00:00'");
  const char *host = *cfg->db_host ? cfg->db_host : "localhost";
  const char *sock = *cfg->db_host ? NULL : cfg->db_socket;
  if (!mysql_real_connect(db->my, host, cfg->db_user, cfg->db_password, cfg->db_name,
                          (unsigned)cfg->db_port, sock, CLIENT_FOUND_ROWS)) {
    dx_fail(err, DX_ERR_DB, "cannot connect to MariaDB: %s", mysql_error(db->my));
    mysql_close(db->my);
    free(db);
    return DX_ERR_DB;
  }
  *out = db;
  return DX_OK;
}

void dx_db_close(dx_db *db) {
  if (!db) return;
  mysql_close(db->my);
  free(db);
}

MYSQL *dx_db_handle(dx_db *db) { return db->my; }

static dx_status run(dx_db *db, dx_errbuf *err, const char *fmt, va_list ap) {
  char *sql = format_sql(db->my, err, fmt, ap);
  if (!sql) return DX_ERR_INVALID;
  int rc = mysql_real_query(db->my, sql, (unsigned long)strlen(sql));
  free(sql);
  if (rc) return dx_fail(err, DX_ERR_DB, "%s", mysql_error(db->my));
  return DX_OK;
}

dx_status dx_db_exec(dx_db *db, uint64_t *affected, dx_errbuf *err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  dx_status st = run(db, err, fmt, ap);
  va_end(ap);
  if (st != DX_OK) return st;
  MYSQL_RES *r = mysql_store_result(db->my);
  if (r) mysql_free_result(r);
  if (affected) *affected = mysql_affected_rows(db->my);
  return DX_OK;
}

/* run, then the whole result set into *res (NULL on failure). */
static dx_status query(dx_db *db, MYSQL_RES **res, dx_errbuf *err, const char *fmt, va_list ap) {
  *res = NULL;
  dx_status st = run(db, err, fmt, ap);
  if (st != DX_OK) return st;
  *res = mysql_store_result(db->my);
  if (!*res) return dx_fail(err, DX_ERR_DB, "query returned no result set: %s", mysql_error(db->my));
  return DX_OK;
}

dx_status dx_db_query(dx_db *db, MYSQL_RES **res, dx_errbuf *err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  dx_status st = query(db, res, err, fmt, ap);
  va_end(ap);
  return st;
}

dx_status dx_db_query_ll(dx_db *db, long long *out, dx_errbuf *err, const char *fmt, ...) {
  MYSQL_RES *r;
  va_list ap;
  va_start(ap, fmt);
  dx_status st = query(db, &r, err, fmt, ap);
  va_end(ap);
  if (st != DX_OK) return st;
  MYSQL_ROW row = mysql_fetch_row(r);
  st = DX_ERR_NOT_FOUND;
  if (row && row[0]) {
    *out = strtoll(row[0], NULL, 10);
    st = DX_OK;
  }
  mysql_free_result(r);
  return st;
}

dx_status dx_db_begin(dx_db *db, dx_errbuf *err) { return dx_db_exec(db, NULL, err, "START TRANSACTION"); }
dx_status dx_db_commit(dx_db *db, dx_errbuf *err) { return dx_db_exec(db, NULL, err, "COMMIT"); }
void dx_db_rollback(dx_db *db) { mysql_rollback(db->my); }
int dx_db_alive(dx_db *db) { return db && mysql_ping(db->my) == 0; }
