/* cmd_db.c: `demix db migrate` and `demix db status`.
 *
 * Migrations are the files schema/NNN_name.sql (directory DEMIX_SCHEMA_DIR,
 * else <home>/schema), applied in numeric order and recorded in the table
 * schema_migrations (version, name, checksum, applied_at). A file is split
 * into statements at `;` (or the current DELIMITER) outside strings, quoted
 * identifiers and comments, and each statement is sent as it is written.
 * A server-side lock keeps two migrators from running at once.
 * Single-threaded. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dx_cli.h"
#include "dx_util.h"

#define MIG_MAX 1000

typedef struct {
  int version;
  char name[256];  /* file name, e.g. 001_core.sql */
  char path[4096];
} mig_file;

typedef struct {
  int version;
  char name[256];
  char checksum[65];
  char applied_at[32];
} mig_row;

static int mig_cmp(const void *a, const void *b) {
  const mig_file *x = a, *y = b;
  return (x->version > y->version) - (x->version < y->version);
}

/* Collect NNN_*.sql from dir into files (sorted). Returns the count or -1
 * (printed) on error, including two files with one version number. */
static int mig_scan(const char *dir, mig_file *files, int max) {
  DIR *d = opendir(dir);
  if (!d) {
    dx_cli_error("cannot open schema directory %s: %s", dir, strerror(errno));
    return -1;
  }
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    const char *s = e->d_name;
    size_t len = strlen(s), digits = 0;
    while (s[digits] >= '0' && s[digits] <= '9') digits++;
    if (!digits || digits > 6 || s[digits] != '_' || len < 5 || strcmp(s + len - 4, ".sql")) continue;
    if (len >= sizeof files[0].name) continue;
    if (n == max) {
      closedir(d);
      dx_cli_error("too many migration files in %s", dir);
      return -1;
    }
    files[n].version = atoi(s);
    snprintf(files[n].name, sizeof files[n].name, "%s", s);
    snprintf(files[n].path, sizeof files[n].path, "%s/%s", dir, s);
    n++;
  }
  closedir(d);
  qsort(files, (size_t)n, sizeof *files, mig_cmp);
  for (int i = 1; i < n; i++)
    if (files[i].version == files[i - 1].version) {
      dx_cli_error("two migrations with version %d: %s and %s", files[i].version, files[i - 1].name, files[i].name);
      return -1;
    }
  return n;
}

static int sql_run(dx_db *db, const char *sql, size_t len) {
  MYSQL *my = dx_db_handle(db);
  if (mysql_real_query(my, sql, (unsigned long)len)) return 1;
  MYSQL_RES *r = mysql_store_result(my);
  if (r) mysql_free_result(r);
  return 0;
}

static int ensure_table(dx_db *db) {
  static const char *ddl =
      "CREATE TABLE IF NOT EXISTS schema_migrations ("
      " version INT NOT NULL PRIMARY KEY,"
      " name VARCHAR(255) NOT NULL,"
      " checksum CHAR(64) NOT NULL,"
      " applied_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)"
      ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4";
  if (sql_run(db, ddl, strlen(ddl))) {
    dx_cli_error("cannot create schema_migrations: %s", mysql_error(dx_db_handle(db)));
    return 1;
  }
  return 0;
}

/* Load recorded migrations; returns count or -1. */
static int load_applied(dx_db *db, mig_row *rows, int max) {
  MYSQL_RES *res;
  dx_errbuf err = {{0}};
  if (dx_db_query(db, &res, &err,
                  "SELECT version, name, checksum, DATE_FORMAT(applied_at, '%%Y-%%m-%%d %%H:%%i:%%s')"
                  " FROM schema_migrations ORDER BY version") != DX_OK) {
    dx_cli_error("reading schema_migrations: %s", err.msg);
    return -1;
  }
  int n = 0;
  MYSQL_ROW row;
  while ((row = mysql_fetch_row(res)) && n < max) {
    rows[n].version = atoi(row[0]);
    snprintf(rows[n].name, sizeof rows[n].name, "%s", row[1] ? row[1] : "");
    snprintf(rows[n].checksum, sizeof rows[n].checksum, "%s", row[2] ? row[2] : "");
    snprintf(rows[n].applied_at, sizeof rows[n].applied_at, "%s", row[3] ? row[3] : "");
    n++;
  }
  mysql_free_result(res);
  return n;
}

static const mig_row *find_row(const mig_row *rows, int n, int version) {
  for (int i = 0; i < n; i++)
    if (rows[i].version == version) return &rows[i];
  return NULL;
}

/* True if [s, e) holds something other than blanks. Comments are left in the
 * statement text, so the scanner reports whether it saw code. */
static int is_blank_line_start(const char *text, const char *p) { return p == text || p[-1] == '\n'; }

/* Split text into statements and run each. Returns the number run, or -1
 * after printing the failing statement's file and line. */
static int run_script(dx_db *db, const char *fname, const char *text, size_t len) {
  char delim[16] = ";";
  const char *p = text, *end = text + len, *stmt = text;
  int line = 1, stmt_line = 1, code = 0, count = 0;
  char quote = 0;
  while (p < end) {
    char c = *p;
    if (quote) {
      if (c == '\\' && quote != '`' && p + 1 < end) {
        if (p[1] == '\n') line++;
        p += 2;
        continue;
      }
      if (c == quote) quote = 0;
      if (c == '\n') line++;
      p++;
      continue;
    }
    if (c == '\n') {
      line++;
      p++;
      continue;
    }
    /* Comments: -- (followed by a blank or end), #, and C-style. */
    if ((c == '-' && p + 1 < end && p[1] == '-' && (p + 2 == end || p[2] == ' ' || p[2] == '\t' || p[2] == '\n' || p[2] == '\r')) ||
        c == '#') {
      while (p < end && *p != '\n') p++;
      continue;
    }
    if (c == '/' && p + 1 < end && p[1] == '*') {
      int executable = p + 2 < end && p[2] == '!'; /* MariaDB runs the body of these */
      if (executable) code = 1;
      p += 2;
      while (p + 1 < end && !(p[0] == '*' && p[1] == '/')) {
        if (*p == '\n') line++;
        p++;
      }
      p = p + 1 < end ? p + 2 : end;
      continue;
    }
    /* DELIMITER x at the start of a line between statements (client syntax). */
    if (!code && is_blank_line_start(text, p) && (size_t)(end - p) > 10 && !strncasecmp(p, "DELIMITER", 9) &&
        (p[9] == ' ' || p[9] == '\t')) {
      const char *q = p + 9;
      while (q < end && (*q == ' ' || *q == '\t')) q++;
      size_t n = 0;
      while (q + n < end && q[n] != '\n' && q[n] != '\r' && q[n] != ' ' && q[n] != '\t') n++;
      if (!n || n >= sizeof delim) {
        dx_cli_error("%s:%d: bad DELIMITER line", fname, line);
        return -1;
      }
      memcpy(delim, q, n);
      delim[n] = 0;
      p = q + n;
      while (p < end && *p != '\n') p++;
      stmt = p;
      continue;
    }
    size_t dl = strlen(delim);
    if ((size_t)(end - p) >= dl && !strncmp(p, delim, dl)) {
      if (code) {
        if (sql_run(db, stmt, (size_t)(p - stmt))) {
          dx_cli_error("%s:%d: %s", fname, stmt_line, mysql_error(dx_db_handle(db)));
          return -1;
        }
        count++;
      }
      p += dl;
      stmt = p;
      code = 0;
      continue;
    }
    if (c == '\'' || c == '"' || c == '`') quote = c;
    if (!code && c != ' ' && c != '\t' && c != '\r') {
      code = 1;
      stmt_line = line;
    }
    p++;
  }
  if (quote) {
    dx_cli_error("%s: unterminated %c quote in the statement at line %d", fname, quote, stmt_line);
    return -1;
  }
  if (code) { /* last statement without a delimiter */
    if (sql_run(db, stmt, (size_t)(end - stmt))) {
      dx_cli_error("%s:%d: %s", fname, stmt_line, mysql_error(dx_db_handle(db)));
      return -1;
    }
    count++;
  }
  return count;
}

static const char *schema_dir(const dx_config *cfg, char *buf, size_t n) {
  const char *env = getenv("DEMIX_SCHEMA_DIR");
  if (env && *env) return env;
  snprintf(buf, n, "%s/schema", cfg->home);
  return buf;
}

static int lock_take(dx_db *db) {
  long long got = 0;
  dx_errbuf err = {{0}};
  if (dx_db_query_ll(db, &got, &err, "SELECT GET_LOCK('demix_schema_migrate', 60)") != DX_OK || got != 1) {
    dx_cli_error("another migration is running (lock not taken) %s", err.msg);
    return 1;
  }
  return 0;
}

static void lock_release(dx_db *db) {
  long long ignored;
  dx_db_query_ll(db, &ignored, NULL, "SELECT RELEASE_LOCK('demix_schema_migrate')");
}

static int db_migrate(dx_db *db, const char *dir) {
  static mig_file files[MIG_MAX];
  static mig_row rows[MIG_MAX];
  int nf = mig_scan(dir, files, MIG_MAX);
  if (nf < 0 || ensure_table(db) || lock_take(db)) return 1;
  int rc = 0, applied = 0;
  int nr = load_applied(db, rows, MIG_MAX);
  if (nr < 0) rc = 1;
  for (int i = 0; !rc && i < nf; i++) {
    const mig_row *r = find_row(rows, nr, files[i].version);
    char *text = NULL;
    size_t len = 0;
    if (dx_read_file(files[i].path, &text, &len) != DX_OK) {
      dx_cli_error("cannot read %s", files[i].path);
      rc = 1;
      break;
    }
    char sum[65];
    dx_sha256_hex(text, len, sum);
    if (r) {
      if (strcmp(r->checksum, sum))
        fprintf(stderr, "demix: warning: %s changed since it was applied on %s\n", files[i].name, r->applied_at);
      free(text);
      continue;
    }
    double t0 = dx_now();
    int n = run_script(db, files[i].name, text, len);
    free(text);
    if (n < 0) {
      dx_cli_error("migration %s failed; it is not recorded (statements before the failing one stay applied)",
                   files[i].name);
      rc = 1;
      break;
    }
    dx_errbuf err = {{0}};
    if (dx_db_exec(db, NULL, &err, "INSERT INTO schema_migrations (version, name, checksum) VALUES (%d, %s, %s)",
                   files[i].version, files[i].name, sum) != DX_OK) {
      dx_cli_error("recording %s: %s", files[i].name, err.msg);
      rc = 1;
      break;
    }
    printf("applied %s (%d statements, %.2f s)\n", files[i].name, n, dx_now() - t0);
    applied++;
  }
  lock_release(db);
  if (!rc && !applied) printf("schema up to date (%d migrations)\n", nf);
  return rc;
}

static int db_status(dx_db *db, const char *dir) {
  static mig_file files[MIG_MAX];
  static mig_row rows[MIG_MAX];
  int nf = mig_scan(dir, files, MIG_MAX);
  if (nf < 0 || ensure_table(db)) return 1;
  int nr = load_applied(db, rows, MIG_MAX);
  if (nr < 0) return 1;
  int pending = 0;
  for (int i = 0; i < nf; i++) {
    const mig_row *r = find_row(rows, nr, files[i].version);
    if (!r) {
      printf("pending  %s\n", files[i].name);
      pending++;
      continue;
    }
    char *text = NULL;
    size_t len = 0;
    char sum[65] = "";
    if (dx_read_file(files[i].path, &text, &len) == DX_OK) dx_sha256_hex(text, len, sum);
    free(text);
    printf("applied  %s  %s%s\n", files[i].name, r->applied_at, strcmp(sum, r->checksum) ? "  (file changed since)" : "");
  }
  for (int i = 0; i < nr; i++) {
    int found = 0;
    for (int j = 0; j < nf && !found; j++) found = files[j].version == rows[i].version;
    if (!found) printf("applied  %s  %s  (file missing)\n", rows[i].name, rows[i].applied_at);
  }
  printf("%d applied, %d pending\n", nr, pending);
  return 0;
}

int dx_cmd_db(int argc, char **argv) {
  if (argc < 2 || (strcmp(argv[1], "migrate") && strcmp(argv[1], "status"))) {
    fprintf(stderr, "usage: demix db migrate | demix db status\n");
    return 2;
  }
  dx_config cfg;
  dx_db *db;
  if (dx_cli_open_db(&cfg, &db)) return 1;
  char buf[DX_CONFIG_STR + 16];
  const char *dir = schema_dir(&cfg, buf, sizeof buf);
  int rc = !strcmp(argv[1], "migrate") ? db_migrate(db, dir) : db_status(db, dir);
  dx_db_close(db);
  return rc;
}
