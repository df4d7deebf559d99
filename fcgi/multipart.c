/* multipart.c: streaming multipart/form-data parser and body-file form
 * extraction (see dx_multipart.h). A parser belongs to one thread. */
#include "dx_multipart.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

enum { S_PREAMBLE, S_AFTER_DELIM, S_HEADERS, S_BODY, S_EPILOGUE, S_ERROR };

struct dx_multipart {
  dx_pool *pool;
  dx_mp_callbacks cb;
  void *ctx;
  char delim[DX_MP_MAX_BOUNDARY + 5]; /* "\r\n--" boundary */
  size_t dlen;
  char *buf; /* malloc'd, freed by a pool cleanup */
  size_t len, cap;
  int state;
  int parts;
  dx_status failed;
};

/* --- header values: `type; name=value; name="quoted"` ------------------- */

static int is_tchar(int c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         (c && strchr("!#$%&'*+-.^_`|~", c));
}

static const char *skip_ows(const char *s) {
  while (*s == ' ' || *s == '\t') s++;
  return s;
}

typedef int (*param_fn)(void *ctx, const char *name, size_t nlen, const char *value);

/* Parse `; name=value` pairs from s; value is unescaped into a pool string.
 * Returns 0 on success, -1 on a syntax error or when fn fails. */
static int parse_params(dx_pool *p, const char *s, param_fn fn, void *ctx) {
  for (;;) {
    s = skip_ows(s);
    if (!*s) return 0;
    if (*s != ';') return -1;
    s = skip_ows(s + 1);
    if (!*s) return 0; /* a trailing ';' */
    const char *name = s;
    while (*s && is_tchar((unsigned char)*s)) s++;
    size_t nlen = (size_t)(s - name);
    if (nlen == 0) return -1;
    s = skip_ows(s);
    if (*s != '=') return -1;
    s = skip_ows(s + 1);
    char *value;
    if (*s == '"') {
      s++;
      size_t cap = strlen(s) + 1, o = 0;
      value = dx_pool_alloc(p, cap);
      if (!value) return -1;
      while (*s && *s != '"') {
        if (*s == '\\') {
          s++;
          if (!*s) return -1;
        }
        value[o++] = *s++;
      }
      if (*s != '"') return -1;
      s++;
      value[o] = 0;
    } else {
      const char *v = s;
      while (*s && is_tchar((unsigned char)*s)) s++;
      if (s == v) return -1;
      value = dx_pool_strndup(p, v, (size_t)(s - v));
      if (!value) return -1;
    }
    if (fn(ctx, name, nlen, value)) return -1;
  }
}

static int name_is(const char *name, size_t nlen, const char *want) {
  return strlen(want) == nlen && !strncasecmp(name, want, nlen);
}

static int boundary_char(int c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || (c && strchr("'()+_,-./:=? ", c));
}

typedef struct {
  const char *boundary;
  int dup;
} ct_params;

static int ct_param(void *ctx, const char *name, size_t nlen, const char *value) {
  ct_params *c = ctx;
  if (name_is(name, nlen, "boundary")) {
    if (c->boundary) c->dup = 1;
    c->boundary = value;
  }
  return 0;
}

dx_status dx_multipart_boundary(const char *content_type, char out[DX_MP_MAX_BOUNDARY + 1], dx_errbuf *err) {
  out[0] = 0;
  if (!content_type) return dx_fail(err, DX_ERR_UNSUPPORTED_MEDIA_TYPE, "missing Content-Type");
  const char *s = skip_ows(content_type);
  static const char want[] = "multipart/form-data";
  if (strncasecmp(s, want, sizeof want - 1) != 0 || is_tchar((unsigned char)s[sizeof want - 1]) ||
      s[sizeof want - 1] == '/')
    return dx_fail(err, DX_ERR_UNSUPPORTED_MEDIA_TYPE, "Content-Type is not multipart/form-data");
  dx_pool *p = dx_pool_create(1024);
  if (!p) return DX_ERR_NOMEM;
  ct_params c = {0};
  int bad = parse_params(p, s + sizeof want - 1, ct_param, &c);
  dx_status st = DX_OK;
  if (bad || c.dup) st = dx_fail(err, DX_ERR_BAD_REQUEST, "malformed Content-Type parameters");
  else if (!c.boundary) st = dx_fail(err, DX_ERR_BAD_REQUEST, "multipart Content-Type has no boundary");
  else {
    size_t n = strlen(c.boundary);
    int ok = n >= 1 && n <= DX_MP_MAX_BOUNDARY && c.boundary[n - 1] != ' ';
    for (size_t i = 0; ok && i < n; i++) ok = boundary_char((unsigned char)c.boundary[i]);
    if (!ok) st = dx_fail(err, DX_ERR_BAD_REQUEST, "invalid multipart boundary");
    else memcpy(out, c.boundary, n + 1);
  }
  dx_pool_destroy(p);
  return st;
}

/* --- the parser ---------------------------------------------------------- */

static void free_fn(void *p) { free(p); }

dx_multipart *dx_multipart_new(dx_pool *p, const char *boundary, const dx_mp_callbacks *cb, void *ctx) {
  size_t bl = strlen(boundary);
  if (bl == 0 || bl > DX_MP_MAX_BOUNDARY) return NULL;
  dx_multipart *mp = dx_pool_calloc(p, sizeof *mp);
  if (!mp) return NULL;
  mp->pool = p;
  mp->cb = *cb;
  mp->ctx = ctx;
  memcpy(mp->delim, "\r\n--", 4);
  memcpy(mp->delim + 4, boundary, bl);
  mp->dlen = 4 + bl;
  mp->cap = 4096;
  mp->buf = malloc(mp->cap);
  if (!mp->buf || dx_pool_cleanup_add(p, free_fn, mp->buf)) {
    free(mp->buf);
    return NULL;
  }
  /* The first delimiter may open the body without a CRLF before it. */
  memcpy(mp->buf, "\r\n", 2);
  mp->len = 2;
  return mp;
}

static dx_status fail(dx_multipart *mp, dx_errbuf *err, const char *msg) {
  mp->state = S_ERROR;
  mp->failed = DX_ERR_BAD_REQUEST;
  return dx_fail(err, DX_ERR_BAD_REQUEST, "malformed multipart body: %s", msg);
}

static dx_status stop(dx_multipart *mp, int rc, dx_errbuf *err) {
  mp->state = S_ERROR;
  mp->failed = (rc > 0 && rc < DX_STATUS_COUNT) ? (dx_status)rc : DX_ERR_BAD_REQUEST;
  if (err && !err->msg[0]) dx_fail(err, mp->failed, "multipart part refused");
  return mp->failed;
}

typedef struct {
  const char *name, *filename;
  int form_data, dup;
} cd_params;

static int cd_param(void *ctx, const char *name, size_t nlen, const char *value) {
  cd_params *c = ctx;
  if (name_is(name, nlen, "name")) {
    if (c->name) c->dup = 1;
    c->name = value;
  } else if (name_is(name, nlen, "filename")) {
    if (c->filename) c->dup = 1;
    c->filename = value;
  }
  return 0;
}

/* Parse the header block h[0..n) (lines ending CRLF) and start the part. */
static dx_status part_headers(dx_multipart *mp, const char *h, size_t n, dx_errbuf *err) {
  char *block = dx_pool_strndup(mp->pool, h, n);
  if (!block) return DX_ERR_NOMEM;
  if (memchr(h, 0, n)) return fail(mp, err, "NUL byte in part headers");
  if (!dx_utf8_valid(h, n)) return fail(mp, err, "part headers are not UTF-8");
  const char *cd = NULL, *ct = NULL;
  char *line = block;
  while (*line) {
    char *end = strstr(line, "\r\n");
    if (!end) return fail(mp, err, "part header line without CRLF");
    *end = 0;
    if (strchr(line, '\r') || strchr(line, '\n')) return fail(mp, err, "bare CR or LF in part headers");
    if (*line == ' ' || *line == '\t') return fail(mp, err, "folded part header line");
    char *colon = strchr(line, ':');
    if (!colon || colon == line) return fail(mp, err, "part header line without a name");
    for (char *c = line; c < colon; c++)
      if (!is_tchar((unsigned char)*c)) return fail(mp, err, "bad character in a part header name");
    *colon = 0;
    char *value = (char *)skip_ows(colon + 1);
    size_t vl = strlen(value);
    while (vl && (value[vl - 1] == ' ' || value[vl - 1] == '\t')) value[--vl] = 0;
    if (!strcasecmp(line, "Content-Disposition")) {
      if (cd) return fail(mp, err, "repeated Content-Disposition");
      cd = value;
    } else if (!strcasecmp(line, "Content-Type")) {
      if (ct) return fail(mp, err, "repeated Content-Type");
      ct = value;
    }
    line = end + 2;
  }
  if (!cd) return fail(mp, err, "part without Content-Disposition");
  static const char fd[] = "form-data";
  if (strncasecmp(cd, fd, sizeof fd - 1) != 0 || is_tchar((unsigned char)cd[sizeof fd - 1]))
    return fail(mp, err, "Content-Disposition is not form-data");
  cd_params c = {0};
  if (parse_params(mp->pool, cd + sizeof fd - 1, cd_param, &c) || c.dup)
    return fail(mp, err, "malformed Content-Disposition parameters");
  if (!c.name) return fail(mp, err, "part without a name");
  dx_mp_part part = {c.name, c.filename, ct && *ct ? ct : NULL};
  int rc = mp->cb.on_part_begin ? mp->cb.on_part_begin(mp->ctx, &part) : 0;
  if (rc) return stop(mp, rc, err);
  return DX_OK;
}

static dx_status emit(dx_multipart *mp, const char *d, size_t n, dx_errbuf *err) {
  if (n == 0 || !mp->cb.on_part_data) return DX_OK;
  int rc = mp->cb.on_part_data(mp->ctx, d, n);
  return rc ? stop(mp, rc, err) : DX_OK;
}

static dx_status process(dx_multipart *mp, dx_errbuf *err) {
  size_t pos = 0;
  dx_status st = DX_OK;
  while (st == DX_OK && mp->state != S_ERROR) {
    char *b = mp->buf + pos;
    size_t avail = mp->len - pos;
    if (mp->state == S_PREAMBLE || mp->state == S_BODY) {
      char *hit = memmem(b, avail, mp->delim, mp->dlen);
      if (hit) {
        if (mp->state == S_BODY) {
          st = emit(mp, b, (size_t)(hit - b), err);
          if (st == DX_OK && mp->cb.on_part_end) {
            int rc = mp->cb.on_part_end(mp->ctx);
            if (rc) st = stop(mp, rc, err);
          }
        }
        pos += (size_t)(hit - b) + mp->dlen;
        mp->state = S_AFTER_DELIM;
        continue;
      }
      if (avail >= mp->dlen) {
        size_t safe = avail - (mp->dlen - 1);
        if (mp->state == S_BODY) st = emit(mp, b, safe, err);
        pos += safe;
      }
      break;
    } else if (mp->state == S_AFTER_DELIM) {
      if (avail < 2) break;
      if (b[0] == '-' && b[1] == '-') {
        mp->state = S_EPILOGUE;
        pos += 2;
      } else if (b[0] == ' ' || b[0] == '\t') {
        pos++; /* transport padding */
      } else if (b[0] == '\r' && b[1] == '\n') {
        if (++mp->parts > DX_MP_MAX_PARTS) return fail(mp, err, "too many parts");
        mp->state = S_HEADERS;
        pos += 2;
      } else {
        return fail(mp, err, "delimiter not followed by CRLF or --");
      }
    } else if (mp->state == S_HEADERS) {
      if (avail >= 2 && b[0] == '\r' && b[1] == '\n') return fail(mp, err, "part without headers");
      char *hit = memmem(b, avail, "\r\n\r\n", 4);
      if (!hit) {
        if (avail > DX_MP_MAX_HEADER) return fail(mp, err, "part headers too long");
        break;
      }
      size_t hl = (size_t)(hit - b) + 2;
      if (hl > DX_MP_MAX_HEADER) return fail(mp, err, "part headers too long");
      st = part_headers(mp, b, hl, err);
      pos += hl + 2;
      mp->state = S_BODY;
    } else { /* S_EPILOGUE: ignored */
      pos = mp->len;
      break;
    }
  }
  if (mp->state == S_ERROR) return mp->failed;
  memmove(mp->buf, mp->buf + pos, mp->len - pos);
  mp->len -= pos;
  return st;
}

dx_status dx_multipart_feed(dx_multipart *mp, const char *data, size_t n, dx_errbuf *err) {
  if (mp->state == S_ERROR) return mp->failed;
  while (n > 0) {
    if (mp->state == S_EPILOGUE) return DX_OK;
    size_t room = mp->cap - mp->len;
    if (room == 0) {
      /* Only a header block can hold the buffer full; grow within bounds. */
      if (mp->cap >= 2 * DX_MP_MAX_HEADER + 2 * DX_MP_MAX_BOUNDARY + 64) return fail(mp, err, "part headers too long");
      size_t ncap = mp->cap * 2;
      char *nb = malloc(ncap);
      if (!nb) return DX_ERR_NOMEM;
      memcpy(nb, mp->buf, mp->len);
      /* The old buffer stays registered with the pool and goes with it. */
      if (dx_pool_cleanup_add(mp->pool, free_fn, nb)) { free(nb); return DX_ERR_NOMEM; }
      mp->buf = nb;
      mp->cap = ncap;
      room = mp->cap - mp->len;
    }
    size_t take = n < room ? n : room;
    memcpy(mp->buf + mp->len, data, take);
    mp->len += take;
    data += take;
    n -= take;
    dx_status st = process(mp, err);
    if (st != DX_OK) return st;
  }
  return DX_OK;
}

dx_status dx_multipart_finish(dx_multipart *mp, dx_errbuf *err) {
  if (mp->state == S_ERROR) return mp->failed;
  if (mp->state != S_EPILOGUE) return fail(mp, err, "body ends before the closing delimiter");
  return DX_OK;
}

/* --- form extraction from a body file ----------------------------------- */

typedef struct {
  dx_pool *pool;
  const char *file_field, *tmp_dir;
  long long max_file;
  size_t max_field;
  dx_mp_form *form;
  dx_errbuf *err;
  int fd;           /* open file part, or -1 */
  int in_field;     /* collecting a field into val */
  char *val;
  size_t vlen;
  const char *fname;
} extract_ctx;

static int ex_begin(void *c, const dx_mp_part *part) {
  extract_ctx *x = c;
  if (!strcmp(part->name, x->file_field)) {
    if (x->form->file_path) return dx_fail(x->err, DX_ERR_BAD_REQUEST, "more than one '%s' part", x->file_field);
    char *path = dx_pool_printf(x->pool, "%s/upload.XXXXXX", x->tmp_dir);
    if (!path) return DX_ERR_NOMEM;
    x->fd = mkstemp(path);
    if (x->fd < 0) return dx_fail(x->err, DX_ERR_IO, "cannot create a temporary file in %s: %s", x->tmp_dir, strerror(errno));
    if (dx_pool_unlink_on_cleanup(x->pool, path)) {
      close(x->fd);
      x->fd = -1;
      unlink(path);
      return DX_ERR_NOMEM;
    }
    x->form->file_path = path;
    x->form->file_name = dx_pool_strdup(x->pool, part->filename);
    x->form->file_type = dx_pool_strdup(x->pool, part->content_type);
    x->form->file_size = 0;
    return 0;
  }
  x->in_field = 1;
  x->fname = dx_pool_strdup(x->pool, part->name);
  x->val = dx_pool_alloc(x->pool, x->max_field + 1);
  x->vlen = 0;
  return x->fname && x->val ? 0 : DX_ERR_NOMEM;
}

static int ex_data(void *c, const char *d, size_t n) {
  extract_ctx *x = c;
  if (x->in_field) {
    if (n > x->max_field - x->vlen) return dx_fail(x->err, DX_ERR_TOO_LARGE, "form field '%.64s' is too large", x->fname);
    memcpy(x->val + x->vlen, d, n);
    x->vlen += n;
    return 0;
  }
  if ((long long)n > x->max_file - x->form->file_size)
    return dx_fail(x->err, DX_ERR_TOO_LARGE, "uploaded file is larger than %lld bytes", x->max_file);
  while (n > 0) {
    ssize_t w = write(x->fd, d, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return dx_fail(x->err, DX_ERR_IO, "cannot write the uploaded file: %s", strerror(errno));
    d += w;
    n -= (size_t)w;
    x->form->file_size += w;
  }
  return 0;
}

static int ex_end(void *c) {
  extract_ctx *x = c;
  if (x->in_field) {
    x->val[x->vlen] = 0;
    dx_kv *f = dx_pool_alloc(x->pool, (x->form->nfields + 1) * sizeof *f);
    if (!f) return DX_ERR_NOMEM;
    if (x->form->nfields) memcpy(f, x->form->fields, x->form->nfields * sizeof *f);
    f[x->form->nfields].name = x->fname;
    f[x->form->nfields].value = x->val;
    x->form->fields = f;
    x->form->nfields++;
    x->in_field = 0;
    return 0;
  }
  if (x->fd >= 0) {
    int rc = close(x->fd);
    x->fd = -1;
    if (rc) return dx_fail(x->err, DX_ERR_IO, "cannot write the uploaded file");
  }
  return 0;
}

dx_status dx_multipart_extract(dx_pool *p, const char *body_path, const char *boundary, const char *file_field,
                               const char *tmp_dir, long long max_file, size_t max_field, dx_mp_form *out,
                               dx_errbuf *err) {
  memset(out, 0, sizeof *out);
  if (err) err->msg[0] = 0;
  extract_ctx x = {p, file_field, tmp_dir, max_file, max_field, out, err, -1, 0, NULL, 0, NULL};
  dx_mp_callbacks cb = {ex_begin, ex_data, ex_end};
  dx_multipart *mp = dx_multipart_new(p, boundary, &cb, &x);
  if (!mp) return DX_ERR_NOMEM;
  int in = open(body_path, O_RDONLY | O_CLOEXEC);
  if (in < 0) return dx_fail(err, DX_ERR_IO, "cannot open the request body: %s", strerror(errno));
  char *chunk = malloc(65536);
  dx_status st = chunk ? DX_OK : DX_ERR_NOMEM;
  while (st == DX_OK) {
    ssize_t r = read(in, chunk, 65536);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) { st = dx_fail(err, DX_ERR_IO, "cannot read the request body: %s", strerror(errno)); break; }
    if (r == 0) break;
    st = dx_multipart_feed(mp, chunk, (size_t)r, err);
  }
  free(chunk);
  close(in);
  if (st == DX_OK) st = dx_multipart_finish(mp, err);
  if (x.fd >= 0) close(x.fd);
  if (st != DX_OK && out->file_path) {
    unlink(out->file_path); /* the pool cleanup would too; do not keep it until then */
    out->file_path = NULL;
  }
  return st;
}
