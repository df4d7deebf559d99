/* dx_db.h: a thin MariaDB layer shared by demix-fcgi, demixd and demix.
 *
 * Queries are built with dx_db_exec/dx_db_query, whose format escapes every
 * value: %s is a quoted, escaped string (NULL becomes NULL), %d int,
 * %u unsigned, %lld long long, %llu unsigned long long, %f double (non-finite
 * becomes NULL), %I a bare identifier checked against [A-Za-z0-9_], %%.
 * No other conversion is accepted, so untrusted text never reaches SQL raw.
 * Threading: one dx_db per thread; the handle is not shared. */
#ifndef DX_DB_H
#define DX_DB_H

#include <mysql.h>
#include <stdint.h>

#include "dx_config.h"

typedef struct dx_db dx_db;

/* Connect with the configured socket or host. With reconnect the handle
 * re-opens itself on the next query after the server went away.
 * Returns DX_ERR_DB with the server's message in err on failure. */
dx_status dx_db_open(const dx_config *cfg, dx_db **out, dx_errbuf *err);
void dx_db_close(dx_db *db); /* NULL is a no-op */
MYSQL *dx_db_handle(dx_db *db);

/* Run a statement that returns no rows. *affected (if non-NULL) receives the
 * affected row count. */
dx_status dx_db_exec(dx_db *db, uint64_t *affected, dx_errbuf *err, const char *fmt, ...);
/* Run a query; *res (caller frees with mysql_free_result) holds all rows. */
dx_status dx_db_query(dx_db *db, MYSQL_RES **res, dx_errbuf *err, const char *fmt, ...);
/* Convenience: first column of the first row as long long; DX_ERR_NOT_FOUND
 * when there is no row, *out untouched. */
dx_status dx_db_query_ll(dx_db *db, long long *out, dx_errbuf *err, const char *fmt, ...);

dx_status dx_db_begin(dx_db *db, dx_errbuf *err);
dx_status dx_db_commit(dx_db *db, dx_errbuf *err);
void dx_db_rollback(dx_db *db);

/* 1 if the server answers a ping. */
int dx_db_alive(dx_db *db);

#endif
