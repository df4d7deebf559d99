/* cmd_token.c: API tokens and users from the command line.
 *
 *   demix token create --user NAME [--role user|admin|superadmin] [--name LABEL]
 *   demix token revoke PREFIX|TOKEN
 *   demix token list [--user NAME]
 *   demix user list
 *
 * A token is "dx_" followed by 40 hex digits from getrandom(2). Only its
 * sha256 (hex, of the whole string) and its first 8 characters are stored;
 * the token itself is printed once on stdout. Single-threaded. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "dx_cli.h"
#include "dx_util.h"

#define TOKEN_PREFIX_LEN 8

static int role_valid(const char *r) { return !strcmp(r, "user") || !strcmp(r, "admin") || !strcmp(r, "superadmin"); }

static int name_valid(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 64) return 0;
  for (; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || strchr("_.@-", *s)))
      return 0;
  return 1;
}

/* "dx_" + 40 lower-case hex digits + NUL. */
static int token_generate(char out[44]) {
  unsigned char b[20];
  if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b) return 1;
  memcpy(out, "dx_", 3);
  for (size_t i = 0; i < sizeof b; i++) snprintf(out + 3 + 2 * i, 3, "%02x", b[i]);
  return 0;
}

/* Find or create the user; with an explicit role, set it. Fills id and the
 * role it has afterwards. Returns 0 or 1 (printed). */
static int user_ensure(dx_db *db, const char *name, const char *role, int role_given, char id[DX_UUID_LEN],
                       char *role_out, size_t role_n) {
  dx_errbuf err = {{0}};
  char new_id[DX_UUID_LEN];
  if (dx_uuid(new_id) != DX_OK) {
    dx_cli_error("no random bytes for an id");
    return 1;
  }
  /* INSERT IGNORE keeps this safe against a concurrent creator. */
  if (dx_db_exec(db, NULL, &err, "INSERT IGNORE INTO users (id, name, role) VALUES (%s, %s, %s)", new_id, name,
                 role) != DX_OK) {
    dx_cli_error("creating user %s: %s", name, err.msg);
    return 1;
  }
  MYSQL_RES *res;
  if (dx_db_query(db, &res, &err, "SELECT id, role FROM users WHERE name = %s", name) != DX_OK) {
    dx_cli_error("reading user %s: %s", name, err.msg);
    return 1;
  }
  MYSQL_ROW row = mysql_fetch_row(res);
  if (!row) {
    mysql_free_result(res);
    dx_cli_error("user %s vanished while being created", name);
    return 1;
  }
  snprintf(id, DX_UUID_LEN, "%s", row[0]);
  snprintf(role_out, role_n, "%s", row[1]);
  mysql_free_result(res);
  if (strcmp(id, new_id) && role_given && strcmp(role_out, role)) {
    if (dx_db_exec(db, NULL, &err, "UPDATE users SET role = %s WHERE id = %s", role, id) != DX_OK) {
      dx_cli_error("setting role of %s: %s", name, err.msg);
      return 1;
    }
    fprintf(stderr, "demix: user %s: role %s -> %s\n", name, role_out, role);
    snprintf(role_out, role_n, "%s", role);
  }
  return 0;
}

static int token_create(int argc, char **argv) {
  int bad = 0;
  const char *user = dx_cli_opt(argc, argv, "--user", &bad);
  const char *role = dx_cli_opt(argc, argv, "--role", &bad);
  const char *label = dx_cli_opt(argc, argv, "--name", &bad);
  if (bad || !user) {
    fprintf(stderr, "usage: demix token create --user NAME [--role user|admin|superadmin] [--name LABEL]\n");
    return 2;
  }
  int role_given = role != NULL;
  if (!role) role = "user";
  if (!role_valid(role)) {
    dx_cli_error("role must be user, admin or superadmin, not '%s'", role);
    return 2;
  }
  if (!name_valid(user)) {
    dx_cli_error("user name must be 1-64 characters of A-Z a-z 0-9 _ . @ -");
    return 2;
  }
  if (label && strlen(label) > 64) {
    dx_cli_error("token name is longer than 64 characters");
    return 2;
  }
  dx_config cfg;
  dx_db *db;
  if (dx_cli_open_db(&cfg, &db)) return 1;
  int rc = 1;
  char user_id[DX_UUID_LEN], token_id[DX_UUID_LEN], token[44], hash[65], prefix[TOKEN_PREFIX_LEN + 1], have_role[16];
  dx_errbuf err = {{0}};
  if (user_ensure(db, user, role, role_given, user_id, have_role, sizeof have_role)) goto out;
  if (token_generate(token) || dx_uuid(token_id) != DX_OK) {
    dx_cli_error("no random bytes for a token");
    goto out;
  }
  dx_sha256_hex(token, strlen(token), hash);
  memcpy(prefix, token, TOKEN_PREFIX_LEN);
  prefix[TOKEN_PREFIX_LEN] = 0;
  if (dx_db_exec(db, NULL, &err, "INSERT INTO api_tokens (id, user_id, token_hash, prefix, name) VALUES (%s, %s, %s, %s, %s)",
                 token_id, user_id, hash, prefix, label) != DX_OK) {
    dx_cli_error("storing token: %s", err.msg);
    goto out;
  }
  fprintf(stderr, "demix: token %s... for user %s (%s); it is shown only now\n", prefix, user, have_role);
  printf("%s\n", token);
  rc = 0;
out:
  dx_db_close(db);
  return rc;
}

static int token_revoke(int argc, char **argv) {
  if (argc != 2 || strlen(argv[1]) < 4) {
    fprintf(stderr, "usage: demix token revoke PREFIX|TOKEN  (the first 8 characters, or the whole token)\n");
    return 2;
  }
  const char *arg = argv[1];
  dx_config cfg;
  dx_db *db;
  if (dx_cli_open_db(&cfg, &db)) return 1;
  int rc = 1;
  dx_errbuf err = {{0}};
  MYSQL_RES *res = NULL;
  dx_status st;
  if (strlen(arg) > TOKEN_PREFIX_LEN) {
    char hash[65];
    dx_sha256_hex(arg, strlen(arg), hash);
    st = dx_db_query(db, &res, &err,
                     "SELECT t.id, t.prefix, u.name FROM api_tokens t JOIN users u ON u.id = t.user_id"
                     " WHERE t.token_hash = %s AND t.revoked_at IS NULL", hash);
  } else {
    st = dx_db_query(db, &res, &err,
                     "SELECT t.id, t.prefix, u.name FROM api_tokens t JOIN users u ON u.id = t.user_id"
                     " WHERE t.prefix = %s AND t.revoked_at IS NULL", arg);
  }
  if (st != DX_OK) {
    dx_cli_error("%s", err.msg);
    goto out;
  }
  unsigned long long n = mysql_num_rows(res);
  if (n == 0) {
    dx_cli_error("no active token matches '%s'", arg);
    goto out;
  }
  if (n > 1) {
    dx_cli_error("%llu active tokens start with '%s'; give the whole token:", n, arg);
    MYSQL_ROW row;
    while ((row = mysql_fetch_row(res))) fprintf(stderr, "  %s...  user %s\n", row[1], row[2]);
    goto out;
  }
  MYSQL_ROW row = mysql_fetch_row(res);
  uint64_t affected = 0;
  if (dx_db_exec(db, &affected, &err, "UPDATE api_tokens SET revoked_at = UTC_TIMESTAMP(3) WHERE id = %s AND revoked_at IS NULL",
                 row[0]) != DX_OK) {
    dx_cli_error("%s", err.msg);
    goto out;
  }
  printf("revoked %s... (user %s)\n", row[1], row[2]);
  rc = 0;
out:
  if (res) mysql_free_result(res);
  dx_db_close(db);
  return rc;
}

static int token_list(int argc, char **argv) {
  int bad = 0;
  const char *user = dx_cli_opt(argc, argv, "--user", &bad);
  if (bad) {
    fprintf(stderr, "usage: demix token list [--user NAME]\n");
    return 2;
  }
  dx_config cfg;
  dx_db *db;
  if (dx_cli_open_db(&cfg, &db)) return 1;
  dx_errbuf err = {{0}};
  MYSQL_RES *res;
  dx_status st = dx_db_query(db, &res, &err,
                             "SELECT t.prefix, u.name, u.role, IFNULL(t.name, ''), DATE_FORMAT(t.created_at, '%%Y-%%m-%%d %%H:%%i:%%s'),"
                             " IFNULL(DATE_FORMAT(t.last_used_at, '%%Y-%%m-%%d %%H:%%i:%%s'), '-'),"
                             " IF(t.revoked_at IS NULL, 'active', 'revoked')"
                             " FROM api_tokens t JOIN users u ON u.id = t.user_id"
                             " WHERE %s IS NULL OR u.name = %s ORDER BY t.created_at",
                             user, user);
  if (st != DX_OK) {
    dx_cli_error("%s", err.msg);
    dx_db_close(db);
    return 1;
  }
  printf("%-9s %-20s %-10s %-8s %-19s  %-19s  %s\n", "prefix", "user", "role", "status", "created", "last used", "name");
  MYSQL_ROW row;
  while ((row = mysql_fetch_row(res)))
    printf("%-9s %-20s %-10s %-8s %-19s  %-19s  %s\n", row[0], row[1], row[2], row[6], row[4], row[5], row[3]);
  mysql_free_result(res);
  dx_db_close(db);
  return 0;
}

int dx_cmd_token(int argc, char **argv) {
  if (argc >= 2 && !strcmp(argv[1], "create")) return token_create(argc - 1, argv + 1);
  if (argc >= 2 && !strcmp(argv[1], "revoke")) return token_revoke(argc - 1, argv + 1);
  if (argc >= 2 && !strcmp(argv[1], "list")) return token_list(argc - 1, argv + 1);
  fprintf(stderr,
          "usage: demix token create --user NAME [--role user|admin|superadmin] [--name LABEL]\n"
          "       demix token revoke PREFIX|TOKEN\n"
          "       demix token list [--user NAME]\n");
  return 2;
}

int dx_cmd_user(int argc, char **argv) {
  if (argc != 2 || strcmp(argv[1], "list")) {
    fprintf(stderr, "usage: demix user list\n");
    return 2;
  }
  dx_config cfg;
  dx_db *db;
  if (dx_cli_open_db(&cfg, &db)) return 1;
  dx_errbuf err = {{0}};
  MYSQL_RES *res;
  if (dx_db_query(db, &res, &err,
                  "SELECT u.name, u.role, u.status, DATE_FORMAT(u.created_at, '%%Y-%%m-%%d %%H:%%i:%%s'),"
                  " (SELECT COUNT(*) FROM api_tokens t WHERE t.user_id = u.id AND t.revoked_at IS NULL),"
                  " (SELECT COUNT(*) FROM tracks k WHERE k.user_id = u.id)"
                  " FROM users u ORDER BY u.created_at, u.name") != DX_OK) {
    dx_cli_error("%s", err.msg);
    dx_db_close(db);
    return 1;
  }
  printf("%-24s %-10s %-8s %-19s  %6s %6s\n", "name", "role", "status", "created", "tokens", "tracks");
  MYSQL_ROW row;
  while ((row = mysql_fetch_row(res)))
    printf("%-24s %-10s %-8s %-19s  %6s %6s\n", row[0], row[1], row[2], row[3], row[4], row[5]);
  mysql_free_result(res);
  dx_db_close(db);
  return 0;
}
