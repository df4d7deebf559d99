/* query.c: query-string, UTF-8 and JSON-body parsing over plain buffers
 * (see dx_query.h). No shared state. */
#include "dx_query.h"

#include <string.h>

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

long dx_url_decode(char *dst, const char *src, size_t n, int plus_space) {
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    char c = src[i];
    if (c == '%') {
      if (n - i < 3) return -1; /* fewer than two bytes follow */
      int hi = hexval((unsigned char)src[i + 1]), lo = hexval((unsigned char)src[i + 2]);
      if (hi < 0 || lo < 0) return -1;
      c = (char)(hi * 16 + lo);
      if (c == 0) return -1;
      i += 2;
    } else if (c == '+' && plus_space) {
      c = ' ';
    } else if (c == 0) {
      return -1;
    }
    dst[o++] = c;
  }
  dst[o] = 0;
  return (long)o;
}

int dx_utf8_valid(const char *str, size_t n) {
  const unsigned char *s = (const unsigned char *)str;
  size_t i = 0;
  while (i < n) {
    unsigned c = s[i];
    if (c < 0x80) { i++; continue; }
    size_t len;
    unsigned cp, min;
    if (c >= 0xc2 && c <= 0xdf) { len = 2; cp = c & 0x1f; min = 0x80; }
    else if (c >= 0xe0 && c <= 0xef) { len = 3; cp = c & 0x0f; min = 0x800; }
    else if (c >= 0xf0 && c <= 0xf4) { len = 4; cp = c & 0x07; min = 0x10000; }
    else return 0;
    if (n - i < len) return 0;
    for (size_t k = 1; k < len; k++) {
      if ((s[i + k] & 0xc0) != 0x80) return 0;
      cp = (cp << 6) | (s[i + k] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    i += len;
  }
  return 1;
}

size_t dx_utf8_length(const char *s, size_t n) {
  size_t count = 0;
  for (size_t i = 0; i < n; i++)
    if (((unsigned char)s[i] & 0xc0) != 0x80) count++;
  return count;
}

dx_status dx_query_parse(dx_pool *p, const char *qs, size_t len, dx_query *out, dx_errbuf *err) {
  out->items = NULL;
  out->n = 0;
  if (!qs || len == 0) return DX_OK;
  size_t pairs = 1;
  for (size_t i = 0; i < len; i++)
    if (qs[i] == '&') pairs++;
  if (pairs > DX_QUERY_MAX_PAIRS) return dx_fail(err, DX_ERR_BAD_REQUEST, "too many query parameters");
  out->items = dx_pool_alloc(p, pairs * sizeof *out->items);
  char *scratch = dx_pool_alloc(p, len + 1);
  if (!out->items || !scratch) return DX_ERR_NOMEM;
  size_t start = 0;
  while (start <= len) {
    size_t end = start;
    while (end < len && qs[end] != '&') end++;
    if (end > start) {
      size_t eq = start;
      while (eq < end && qs[eq] != '=') eq++;
      size_t vstart = eq < end ? eq + 1 : end;
      long kn = dx_url_decode(scratch, qs + start, eq - start, 1);
      if (kn < 0) return dx_fail(err, DX_ERR_BAD_REQUEST, "bad percent-escape in query parameter name");
      if (!dx_utf8_valid(scratch, (size_t)kn)) return dx_fail(err, DX_ERR_BAD_REQUEST, "query parameter name is not UTF-8");
      char *name = dx_pool_strndup(p, scratch, (size_t)kn);
      long vn = dx_url_decode(scratch, qs + vstart, end - vstart, 1);
      if (vn < 0) return dx_fail(err, DX_ERR_BAD_REQUEST, "bad percent-escape in query parameter '%.64s'", name ? name : "");
      if (!dx_utf8_valid(scratch, (size_t)vn))
        return dx_fail(err, DX_ERR_BAD_REQUEST, "query parameter '%.64s' is not UTF-8", name ? name : "");
      char *value = dx_pool_strndup(p, scratch, (size_t)vn);
      if (!name || !value) return DX_ERR_NOMEM;
      out->items[out->n].name = name;
      out->items[out->n].value = value;
      out->n++;
    }
    start = end + 1;
  }
  return DX_OK;
}

const char *dx_query_get(const dx_query *q, const char *name) {
  for (size_t i = 0; i < q->n; i++)
    if (!strcmp(q->items[i].name, name)) return q->items[i].value;
  return NULL;
}

size_t dx_query_count(const dx_query *q, const char *name) {
  size_t c = 0;
  for (size_t i = 0; i < q->n; i++)
    if (!strcmp(q->items[i].name, name)) c++;
  return c;
}

dx_status dx_json_parse_object(const char *buf, size_t n, json_object **out, dx_errbuf *err) {
  *out = NULL;
  size_t i = 0;
  while (i < n && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\r' || buf[i] == '\n')) i++;
  if (i == n) return dx_fail(err, DX_ERR_BAD_JSON, "request body is empty");
  if (n > 0x7fffffff) return dx_fail(err, DX_ERR_BAD_JSON, "request body is too large to parse");
  if (!dx_utf8_valid(buf, n)) return dx_fail(err, DX_ERR_BAD_JSON, "request body is not valid UTF-8");
  /* json-c takes 'single-quoted' strings even when strict; JSON does not. */
  int in_str = 0;
  for (size_t k = 0; k < n; k++) {
    char c = buf[k];
    if (in_str) {
      if (c == '\\') k++;
      else if (c == '"') in_str = 0;
    } else if (c == '"') {
      in_str = 1;
    } else if (c == '\'') {
      return dx_fail(err, DX_ERR_BAD_JSON, "malformed JSON: single-quoted string");
    }
  }
  json_tokener *tok = json_tokener_new_ex(32);
  if (!tok) return DX_ERR_NOMEM;
  json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
  json_object *obj = json_tokener_parse_ex(tok, buf, (int)n);
  enum json_tokener_error jerr = json_tokener_get_error(tok);
  size_t used = json_tokener_get_parse_end(tok);
  if (!obj && jerr == json_tokener_continue) {
    /* A bare number or literal at the very end needs the end-of-input mark. */
    obj = json_tokener_parse_ex(tok, "", 1);
    jerr = json_tokener_get_error(tok);
    used = n;
  }
  json_tokener_free(tok);
  if (jerr == json_tokener_success && !obj) { /* the literal null */
    for (size_t k = used; k < n; k++)
      if (!(buf[k] == ' ' || buf[k] == '\t' || buf[k] == '\r' || buf[k] == '\n'))
        return dx_fail(err, DX_ERR_BAD_JSON, "malformed JSON: trailing data after the value");
    return dx_fail(err, DX_ERR_VALIDATION_ERROR, "request body must be a JSON object");
  }
  if (jerr != json_tokener_success || !obj) {
    json_object_put(obj);
    if (jerr == json_tokener_continue) return dx_fail(err, DX_ERR_BAD_JSON, "request body is truncated JSON");
    return dx_fail(err, DX_ERR_BAD_JSON, "malformed JSON: %s", json_tokener_error_desc(jerr));
  }
  for (size_t k = used; k < n; k++)
    if (!(buf[k] == ' ' || buf[k] == '\t' || buf[k] == '\r' || buf[k] == '\n')) {
      json_object_put(obj);
      return dx_fail(err, DX_ERR_BAD_JSON, "malformed JSON: trailing data after the value");
    }
  if (!json_object_is_type(obj, json_type_object)) {
    json_object_put(obj);
    return dx_fail(err, DX_ERR_VALIDATION_ERROR, "request body must be a JSON object");
  }
  *out = obj;
  return DX_OK;
}
