/* h_upload.c: POST /api/tracks. The body is a file nginx already wrote (or
 * the dispatcher spooled): raw audio (Content-Type audio/..., ?title=&artist=
 * &album=&filename=) or multipart/form-data with a `file` part and title,
 * artist, album fields. The audio is decoded through once to verify it, then
 * hard-linked (or copied) into storage_dir/tracks/<id>/original.<ext> via a
 * temporary name and rename, and only then is the row committed. On any
 * failure nothing stays behind: no file, no row.
 * One request at a time per worker process. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dx_audio.h"
#include "dx_fcgi.h"
#include "dx_multipart.h"

#define FIELD_MAX 65536

typedef struct {
  char *dir;
  int keep;
} track_dir;

static void track_dir_cleanup(void *p) {
  track_dir *d = p;
  if (!d->keep) dx_rmtree(d->dir);
}

/* Copy src to dst (created new). */
static dx_status copy_file(const char *src, const char *dst, dx_errbuf *err) {
  int in = open(src, O_RDONLY | O_CLOEXEC);
  if (in < 0) return dx_fail(err, DX_ERR_IO, "cannot open %s: %s", src, strerror(errno));
  int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (out >= 0) fchmod(out, 0644); /* whatever the umask: nginx reads it */
  if (out < 0) {
    close(in);
    return dx_fail(err, DX_ERR_IO, "cannot create %s: %s", dst, strerror(errno));
  }
  char *buf = malloc(1 << 16);
  dx_status st = buf ? DX_OK : DX_ERR_NOMEM;
  while (st == DX_OK) {
    ssize_t n = read(in, buf, 1 << 16);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) st = dx_fail(err, DX_ERR_IO, "cannot read %s: %s", src, strerror(errno));
    if (n <= 0) break;
    for (ssize_t off = 0; st == DX_OK && off < n;) {
      ssize_t w = write(out, buf + off, (size_t)(n - off));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) st = dx_fail(err, DX_ERR_IO, "cannot write %s: %s", dst, strerror(errno));
      else off += w;
    }
  }
  free(buf);
  close(in);
  if (st == DX_OK && fsync(out)) st = dx_fail(err, DX_ERR_IO, "cannot write %s: %s", dst, strerror(errno));
  if (close(out) && st == DX_OK) st = dx_fail(err, DX_ERR_IO, "cannot write %s", dst);
  if (st != DX_OK) unlink(dst);
  return st;
}

/* A text value from a form field or the query: UTF-8, at most max characters. */
static const char *text_value(dx_req *r, const char *field, const char *v, size_t max) {
  if (!v) return NULL;
  size_t n = strlen(v);
  if (!dx_utf8_valid(v, n)) {
    dx_valid_add(r, field, "must be UTF-8 text");
    return NULL;
  }
  if (dx_utf8_length(v, n) > max) {
    dx_valid_add(r, field, "is too long");
    return NULL;
  }
  return n ? v : NULL;
}

/* The last path component of a client file name, or NULL when unusable. */
static const char *clean_name(dx_req *r, const char *name) {
  if (!name) return NULL;
  const char *base = name;
  for (const char *c = name; *c; c++)
    if (*c == '/' || *c == '\\') base = c + 1;
  size_t n = strlen(base);
  if (n == 0 || !dx_utf8_valid(base, n) || dx_utf8_length(base, n) > 255) return NULL;
  for (const char *c = base; *c; c++)
    if ((unsigned char)*c < 0x20 || *c == 0x7f) return NULL;
  return dx_pool_strdup(r->pool, base);
}

static int is_multipart(const char *ct) { return ct && !strncasecmp(ct, "multipart/form-data", 19); }
static int is_audio(const char *ct) { return ct && !strncasecmp(ct, "audio/", 6) && ct[6] && ct[6] != ';'; }

dx_status dx_h_tracks_create(dx_req *r) {
  const char *ct = r->content_type, *src = NULL, *title = NULL, *artist = NULL, *album = NULL, *orig = NULL;
  if (is_multipart(ct)) {
    char boundary[DX_MP_MAX_BOUNDARY + 1];
    dx_status st = dx_multipart_boundary(ct, boundary, &r->err);
    if (st != DX_OK) return st;
    if (!r->body_file) return dx_fail(&r->err, DX_ERR_BAD_REQUEST, "malformed multipart body: the body is empty");
    char *tmp = dx_pool_printf(r->pool, "%s/tmp", r->cfg->storage_dir);
    if (!tmp) return DX_ERR_NOMEM;
    if (dx_mkdirs(tmp) != DX_OK) return dx_fail(&r->err, DX_ERR_IO, "cannot create %s", tmp);
    dx_mp_form form;
    st = dx_multipart_extract(r->pool, r->body_file, boundary, "file", tmp, r->cfg->max_upload_bytes, FIELD_MAX, &form,
                              &r->err);
    if (st != DX_OK) return st;
    for (size_t i = 0; i < form.nfields; i++) {
      const dx_kv *f = &form.fields[i];
      if (!strcmp(f->name, "title")) title = text_value(r, "title", f->value, 255);
      else if (!strcmp(f->name, "artist")) artist = text_value(r, "artist", f->value, 255);
      else if (!strcmp(f->name, "album")) album = text_value(r, "album", f->value, 255);
      else dx_valid_add(r, dx_utf8_valid(f->name, strlen(f->name)) ? f->name : "form", "unknown field");
    }
    if (!form.file_path) dx_valid_add(r, "file", "is required");
    if (dx_valid_any(r)) return DX_ERR_VALIDATION_ERROR;
    src = form.file_path;
    orig = clean_name(r, form.file_name);
  } else if (is_audio(ct)) {
    title = text_value(r, "title", dx_req_query(r, "title"), 255);
    artist = text_value(r, "artist", dx_req_query(r, "artist"), 255);
    album = text_value(r, "album", dx_req_query(r, "album"), 255);
    orig = clean_name(r, dx_req_query(r, "filename"));
    if (dx_valid_any(r)) return DX_ERR_VALIDATION_ERROR;
    src = r->body_file;
  } else {
    return dx_fail(&r->err, DX_ERR_UNSUPPORTED_MEDIA_TYPE,
                   "send the audio as Content-Type audio/* or as multipart/form-data with a 'file' part");
  }
  struct stat sst;
  if (!src || stat(src, &sst) || sst.st_size == 0) return dx_fail(&r->err, DX_ERR_EMPTY, "the uploaded file is empty");
  if (sst.st_size > r->cfg->max_upload_bytes)
    return dx_fail(&r->err, DX_ERR_TOO_LARGE, "upload is larger than %lld bytes", r->cfg->max_upload_bytes);

  dx_audio_info info;
  dx_errbuf perr;
  dx_status st = dx_audio_probe(src, &info, &perr);
  if (st == DX_ERR_UNSUPPORTED)
    return dx_fail(&r->err, DX_ERR_UNSUPPORTED_MEDIA_TYPE, "not an audio file demix can read (%s)", perr.msg);
  if (st != DX_OK) return dx_fail(&r->err, st, "%s", perr.msg);
  const char *ext = info.format;
  if (strcmp(ext, "wav") && strcmp(ext, "flac") && strcmp(ext, "ogg") && strcmp(ext, "mp3"))
    return dx_fail(&r->err, DX_ERR_UNSUPPORTED_MEDIA_TYPE, "audio format %s is not accepted (wav, flac, ogg, mp3)", ext);
  if (r->cfg->max_track_seconds > 0 && info.duration > r->cfg->max_track_seconds)
    return dx_fail(&r->err, DX_ERR_TOO_LONG, "audio is %.0f s long, the limit is %.0f s", info.duration,
                   r->cfg->max_track_seconds);

  char id[DX_UUID_LEN];
  if (dx_uuid(id) != DX_OK) return DX_ERR_IO;
  track_dir *td = dx_pool_calloc(r->pool, sizeof *td);
  if (!td) return DX_ERR_NOMEM;
  td->dir = dx_pool_printf(r->pool, "%s/tracks/%s", r->cfg->storage_dir, id);
  char *rel = dx_pool_printf(r->pool, "tracks/%s/original.%s", id, ext);
  char *final = dx_pool_printf(r->pool, "%s/original.%s", td->dir, ext);
  char *tmp = dx_pool_printf(r->pool, "%s/.original.%s.tmp", td->dir, ext);
  if (!td->dir || !rel || !final || !tmp) return DX_ERR_NOMEM;
  if (dx_pool_cleanup_add(r->pool, track_dir_cleanup, td)) return DX_ERR_NOMEM;
  if (dx_mkdirs(td->dir) != DX_OK) return dx_fail(&r->err, DX_ERR_IO, "cannot create %s", td->dir);
  /* nginx serves the file later, possibly as another user: it must be 0644.
   * A link to a file we may not chmod (nginx's own body file) becomes a copy. */
  if (link(src, tmp) != 0 || chmod(tmp, 0644) != 0) {
    unlink(tmp);
    st = copy_file(src, tmp, &r->err);
    if (st != DX_OK) return st;
  }
  if (rename(tmp, final) != 0) return dx_fail(&r->err, DX_ERR_IO, "cannot rename into %s: %s", final, strerror(errno));

  st = dx_db_exec(r->db, NULL, &r->err,
                  "INSERT INTO tracks (id, user_id, title, artist, album, duration, sample_rate, channels, frames, "
                  "format, original_name, file_path, file_size, created_at, updated_at) VALUES "
                  "(%s, %s, %s, %s, %s, %f, %d, %d, %lld, %s, %s, %s, %lld, UTC_TIMESTAMP(3), UTC_TIMESTAMP(3))",
                  id, r->user.id, title, artist, album, info.duration, info.samplerate, info.channels,
                  (long long)info.frames, ext, orig, rel, (long long)sst.st_size);
  if (st != DX_OK) return st;
  td->keep = 1;
  json_object *t;
  st = dx_track_json(r, id, &t);
  if (st != DX_OK) return st;
  char loc[64];
  snprintf(loc, sizeof loc, "/api/tracks/%s", id);
  dx_resp_header(r, "Location", loc);
  return dx_resp_json(r, 201, t);
}
