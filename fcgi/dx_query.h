/* dx_query.h: pure parsers for untrusted request text: URL query strings
 * (application/x-www-form-urlencoded), JSON request bodies and UTF-8 checks.
 * They work on buffers only (no FastCGI, no database) so unit tests and fuzz
 * targets drive them directly.
 * Threading: no shared state; results live in the caller's pool. */
#ifndef DX_QUERY_H
#define DX_QUERY_H

#include <json-c/json.h>
#include <stddef.h>

#include "dx_error.h"
#include "dx_pool.h"

typedef struct {
  const char *name;
  const char *value;
} dx_kv;

/* Parsed query: pairs in their order, repeated keys kept. */
typedef struct {
  dx_kv *items;
  size_t n;
} dx_query;

#define DX_QUERY_MAX_PAIRS 256

/* Parse qs[0..len) into out (pool-owned strings). `+` is a space, %XX is
 * decoded; a bad escape (`%`, `%4`, `%zz`), a decoded NUL, invalid UTF-8 or
 * more than DX_QUERY_MAX_PAIRS pairs give DX_ERR_BAD_REQUEST with details in
 * err. Empty pieces (`a=1&&b=2`) are skipped; `a` alone has value "".
 * DX_ERR_NOMEM when the pool is exhausted. */
dx_status dx_query_parse(dx_pool *p, const char *qs, size_t len, dx_query *out, dx_errbuf *err);
/* First value for name, or NULL. */
const char *dx_query_get(const dx_query *q, const char *name);
/* How many times name occurs. */
size_t dx_query_count(const dx_query *q, const char *name);

/* Percent-decode src[0..n) into dst (room for n+1 bytes), `+` to space when
 * plus_space. Returns the decoded length, or -1 on a bad escape or a decoded
 * NUL. dst is NUL-terminated. */
long dx_url_decode(char *dst, const char *src, size_t n, int plus_space);

/* 1 if s[0..n) is well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
int dx_utf8_valid(const char *s, size_t n);
/* Number of code points in a valid UTF-8 string. */
size_t dx_utf8_length(const char *s, size_t n);

/* Parse a request body as one JSON object. DX_ERR_BAD_JSON for empty input,
 * malformed JSON, invalid UTF-8, nesting deeper than 32 or trailing bytes
 * other than whitespace; DX_ERR_VALIDATION_ERROR when the value is not an
 * object. On DX_OK *out is a new reference the caller puts. */
dx_status dx_json_parse_object(const char *buf, size_t n, json_object **out, dx_errbuf *err);

#endif
