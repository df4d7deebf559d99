/* dx_multipart.h: a streaming multipart/form-data parser (RFC 7578 over the
 * RFC 2046 multipart syntax).
 *
 * The parser is fed the body in pieces of any size and calls back for each
 * part: begin (with its name, filename and content type), data (in pieces)
 * and end. It keeps at most one header block (8 KiB) and a boundary's worth
 * of bytes, so a body of any size passes through in constant memory.
 * Strict: CRLF line ends, Content-Disposition form-data with a name on every
 * part, at most DX_MP_MAX_PARTS parts, the closing delimiter required.
 * dx_multipart_extract builds on it to pull a form out of a body file.
 * Threading: a parser belongs to one thread. */
#ifndef DX_MULTIPART_H
#define DX_MULTIPART_H

#include <stddef.h>

#include "dx_error.h"
#include "dx_pool.h"
#include "dx_query.h"

#define DX_MP_MAX_BOUNDARY 70
#define DX_MP_MAX_HEADER 8192
#define DX_MP_MAX_PARTS 64

typedef struct {
  const char *name;         /* form field name; never NULL */
  const char *filename;     /* NULL when the part has no filename parameter */
  const char *content_type; /* NULL when the part has no Content-Type */
} dx_mp_part;

/* Callbacks return 0 to go on; anything else stops the parser, which then
 * returns the dx_status the callback returned. */
typedef struct {
  int (*on_part_begin)(void *ctx, const dx_mp_part *part);
  int (*on_part_data)(void *ctx, const char *data, size_t n);
  int (*on_part_end)(void *ctx);
} dx_mp_callbacks;

typedef struct dx_multipart dx_multipart;

/* The boundary parameter of a multipart/form-data Content-Type, copied into
 * out (DX_MP_MAX_BOUNDARY + 1 bytes). DX_ERR_UNSUPPORTED_MEDIA_TYPE when the
 * type is not multipart/form-data; DX_ERR_BAD_REQUEST when the boundary is
 * missing or not a valid RFC 2046 boundary. */
dx_status dx_multipart_boundary(const char *content_type, char out[DX_MP_MAX_BOUNDARY + 1], dx_errbuf *err);

/* A parser in pool p (freed with the pool). NULL when out of memory. */
dx_multipart *dx_multipart_new(dx_pool *p, const char *boundary, const dx_mp_callbacks *cb, void *ctx);
/* Feed the next n bytes. DX_ERR_BAD_REQUEST (details in err) on a syntax
 * error; a callback's status when it stopped the parser. After an error the
 * parser refuses further input. */
dx_status dx_multipart_feed(dx_multipart *mp, const char *data, size_t n, dx_errbuf *err);
/* End of input: DX_ERR_BAD_REQUEST unless the closing delimiter was seen. */
dx_status dx_multipart_finish(dx_multipart *mp, dx_errbuf *err);

/* A form pulled out of a body: the part named file_field goes to a new file
 * in tmp_dir (unlinked by the pool's cleanup unless the caller cancels it);
 * other parts are kept in memory, each at most max_field bytes. */
typedef struct {
  const char *file_path;    /* NULL when there was no file part */
  const char *file_name;    /* its filename parameter, or NULL */
  const char *file_type;    /* its Content-Type, or NULL */
  long long file_size;
  dx_kv *fields;            /* the other parts, in order */
  size_t nfields;
} dx_mp_form;

/* Parse the multipart body in body_path. DX_ERR_BAD_REQUEST for a malformed
 * body or a repeated file part, DX_ERR_TOO_LARGE when the file part passes
 * max_file bytes or a field passes max_field, DX_ERR_IO when the temporary
 * file cannot be written. Nothing is left on disk after a failure. */
dx_status dx_multipart_extract(dx_pool *p, const char *body_path, const char *boundary, const char *file_field,
                               const char *tmp_dir, long long max_file, size_t max_field, dx_mp_form *out,
                               dx_errbuf *err);

#endif
