/* dx_pool.h: a per-request memory pool (arena) with cleanups.
 *
 * Everything a request allocates comes from its pool and is released in one
 * dx_pool_destroy (or dx_pool_reset between requests). Resources that are not
 * memory (temporary files, result sets, JSON trees) register a cleanup that
 * runs, newest first, when the pool is reset or destroyed.
 * Threading: a pool belongs to one thread; nothing here locks. */
#ifndef DX_POOL_H
#define DX_POOL_H

#include <stddef.h>

typedef struct dx_pool dx_pool;
typedef void (*dx_pool_cleanup_fn)(void *data);

/* A pool whose first block holds block_size bytes (0: 16 KiB). NULL when out
 * of memory. */
dx_pool *dx_pool_create(size_t block_size);
/* Run cleanups and free everything; NULL is a no-op. */
void dx_pool_destroy(dx_pool *p);
/* Run cleanups and forget all allocations, keeping the first block for reuse. */
void dx_pool_reset(dx_pool *p);

/* n bytes aligned for any type, owned by the pool; NULL when out of memory. */
void *dx_pool_alloc(dx_pool *p, size_t n);
void *dx_pool_calloc(dx_pool *p, size_t n);
/* Copies owned by the pool; NULL in gives NULL out. */
char *dx_pool_strdup(dx_pool *p, const char *s);
char *dx_pool_strndup(dx_pool *p, const char *s, size_t n);
char *dx_pool_printf(dx_pool *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Register fn(data) to run at reset/destroy. Returns 0, or -1 when out of
 * memory (then fn has NOT been registered). */
int dx_pool_cleanup_add(dx_pool *p, dx_pool_cleanup_fn fn, void *data);
/* Ready-made cleanups: unlink a path (a pool string); json_object_put;
 * mysql_free_result. */
int dx_pool_unlink_on_cleanup(dx_pool *p, const char *path);
int dx_pool_json_on_cleanup(dx_pool *p, void *json_object);
int dx_pool_result_on_cleanup(dx_pool *p, void *mysql_res);
/* Cancel the unlink registered for path (the file was renamed into place). */
void dx_pool_unlink_cancel(dx_pool *p, const char *path);

#endif
