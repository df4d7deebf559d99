/* error.c: messages, names and HTTP statuses for dx_status (see dx_error.h). */
#include "dx_error.h"

#include <stdarg.h>
#include <stdio.h>

const char *dx_strerror(dx_status s) {
  switch (s) {
#define DX_ERR_MSG(name, msg, http) case DX_##name: return msg;
    DX_ERRNO_MAP(DX_ERR_MSG)
#undef DX_ERR_MSG
  default: return "unknown error";
  }
}

const char *dx_status_name(dx_status s) {
  switch (s) {
#define DX_ERR_NAME(name, msg, http) case DX_##name: return (#name[0] == 'E' && #name[3] == '_') ? &#name[4] : #name;
    DX_ERRNO_MAP(DX_ERR_NAME)
#undef DX_ERR_NAME
  default: return "UNKNOWN";
  }
}

int dx_status_http(dx_status s) {
  switch (s) {
#define DX_ERR_HTTP(name, msg, http) case DX_##name: return http;
    DX_ERRNO_MAP(DX_ERR_HTTP)
#undef DX_ERR_HTTP
  default: return 500;
  }
}

dx_status dx_fail(dx_errbuf *err, dx_status s, const char *fmt, ...) {
  if (err) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
  }
  return s;
}
