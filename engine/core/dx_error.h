/* dx_error.h: the one list of demix status codes.
 *
 * DX_ERRNO_MAP is an X-macro: each entry is (NAME, "message", http_status).
 * It produces the dx_status enum, dx_strerror(), dx_status_name() (the
 * string used as the API's "code") and dx_status_http(). Add codes at the
 * end of the list; tests/unit/test_error.c checks every code has a message.
 * No process-global "last error": functions return a dx_status and, where
 * they have more to say, write it into a caller-provided dx_errbuf.
 * Thread-safe: everything here is read-only data. */
#ifndef DX_ERROR_H
#define DX_ERROR_H

#include <stddef.h>

#define DX_ERRNO_MAP(X)                                                        \
  X(OK, "success", 200)                                                        \
  X(ERR_NOMEM, "out of memory", 500)                                           \
  X(ERR_INVALID, "invalid argument", 400)                                      \
  X(ERR_IO, "input/output error", 500)                                         \
  X(ERR_NOT_FOUND, "not found", 404)                                           \
  X(ERR_EXISTS, "already exists", 409)                                         \
  X(ERR_CONFIG, "bad configuration", 500)                                      \
  X(ERR_DB, "database error", 503)                                             \
  X(ERR_PARSE, "malformed input", 400)                                         \
  X(ERR_TOO_LARGE, "input too large", 413)                                     \
  X(ERR_UNSUPPORTED, "unsupported format", 415)                                \
  X(ERR_CORRUPT, "damaged or unreadable file", 422)                            \
  X(ERR_EMPTY, "empty audio", 422)                                             \
  X(ERR_SILENT, "silent audio", 422)                                           \
  X(ERR_TOO_LONG, "audio too long", 422)                                       \
  X(ERR_CANCELLED, "cancelled", 409)                                           \
  X(ERR_BUSY, "busy, try again", 503)                                          \
  X(ERR_TIMEOUT, "timed out", 504)                                             \
  X(ERR_NO_DEVICE, "no GPU device available", 503)                             \
  X(ERR_CUDA, "CUDA error", 500)                                               \
  X(ERR_CUFFT, "cuFFT error", 500)                                             \
  X(ERR_CUDNN, "cuDNN error", 500)                                             \
  X(ERR_CUBLAS, "cuBLAS error", 500)                                           \
  X(ERR_MODEL, "bad model file", 422)                                          \
  X(ERR_MODEL_NOT_INSTALLED, "model weights are not installed", 422)           \
  X(ERR_PICKLE_GLOBAL, "model file names a global that is not allowed", 422)   \
  X(ERR_NETWORK, "network error", 502)                                         \
  X(ERR_CHECKSUM, "checksum mismatch", 422)                                    \
  X(ERR_INTERNAL, "internal error", 500)                                      \
  X(ERR_UNAUTHORIZED, "missing or invalid token", 401)                         \
  X(ERR_FORBIDDEN, "forbidden", 403)                                           \
  X(ERR_METHOD_NOT_ALLOWED, "method not allowed", 405)                         \
  X(ERR_RATE_LIMITED, "rate limit exceeded", 429)                              \
  X(ERR_BAD_JSON, "malformed JSON body", 400)                                  \
  X(ERR_BAD_REQUEST, "bad request", 400)                                       \
  X(ERR_UNSUPPORTED_MEDIA_TYPE, "unsupported media type", 415)                 \
  X(ERR_VALIDATION_ERROR, "validation failed", 422)                            \
  X(ERR_CONFLICT, "conflict", 409)                                             \
  X(ERR_UNAVAILABLE, "service unavailable", 503)

typedef enum {
#define DX_ERR_ENUM(name, msg, http) DX_##name,
  DX_ERRNO_MAP(DX_ERR_ENUM)
#undef DX_ERR_ENUM
  DX_STATUS_COUNT
} dx_status;

/* Human-readable message; never NULL (unknown codes give "unknown error"). */
const char *dx_strerror(dx_status s);
/* Upper-case code name without the DX_/ERR_ prefix, e.g. "NOT_FOUND". */
const char *dx_status_name(dx_status s);
/* The HTTP status an API answer for this code uses. */
int dx_status_http(dx_status s);

/* A caller-owned buffer for a detailed message next to a dx_status. */
typedef struct {
  char msg[512];
} dx_errbuf;

/* printf into err (if non-NULL) and return s; lets code write
 * `return dx_fail(err, DX_ERR_CORRUPT, "bad header in %s", path);` */
dx_status dx_fail(dx_errbuf *err, dx_status s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
