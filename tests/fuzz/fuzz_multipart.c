/* fuzz_multipart.c: the streaming multipart parser. The first byte picks a
 * chunk size; the body is fed in those chunks and must give the same result
 * as when fed whole. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dx_multipart.h"

typedef struct {
  uint64_t hash;
  size_t bytes, parts;
} digest;

static void mix(digest *d, const void *p, size_t n) {
  const unsigned char *c = p;
  for (size_t i = 0; i < n; i++) d->hash = (d->hash ^ c[i]) * 1099511628211ULL;
}
static int on_begin(void *ctx, const dx_mp_part *part) {
  digest *d = ctx;
  d->parts++;
  mix(d, part->name, strlen(part->name) + 1);
  if (part->filename) mix(d, part->filename, strlen(part->filename) + 1);
  if (part->content_type) mix(d, part->content_type, strlen(part->content_type) + 1);
  return 0;
}
static int on_data(void *ctx, const char *data, size_t n) {
  digest *d = ctx;
  d->bytes += n;
  mix(d, data, n);
  return 0;
}
static int on_end(void *ctx) {
  mix(ctx, "|", 1);
  return 0;
}

static dx_status run(const char *body, size_t n, size_t chunk, digest *d) {
  dx_pool *p = dx_pool_create(0);
  dx_mp_callbacks cb = {on_begin, on_data, on_end};
  memset(d, 0, sizeof *d);
  d->hash = 1469598103934665603ULL;
  dx_multipart *mp = dx_multipart_new(p, "fuzzB0undary", &cb, d);
  dx_errbuf err;
  dx_status st = mp ? DX_OK : DX_ERR_NOMEM;
  for (size_t off = 0; st == DX_OK && off < n; off += chunk)
    st = dx_multipart_feed(mp, body + off, n - off < chunk ? n - off : chunk, &err);
  if (st == DX_OK) st = dx_multipart_finish(mp, &err);
  dx_pool_destroy(p);
  return st;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  size_t chunk = (size_t)data[0] % 64 + 1;
  const char *body = (const char *)data + 1;
  size_t n = size - 1;
  digest whole, pieces;
  dx_status a = run(body, n, n ? n : 1, &whole);
  dx_status b = run(body, n, chunk, &pieces);
  if (a != b) abort();
  if (a == DX_OK && (whole.hash != pieces.hash || whole.bytes != pieces.bytes || whole.parts != pieces.parts)) abort();
  /* The Content-Type parser too, on the same bytes as a string. */
  char ct[256];
  size_t k = n < sizeof ct - 1 ? n : sizeof ct - 1;
  memcpy(ct, body, k);
  ct[k] = 0;
  char boundary[DX_MP_MAX_BOUNDARY + 1];
  dx_errbuf err;
  if (dx_multipart_boundary(ct, boundary, &err) == DX_OK && (strlen(boundary) == 0 || strlen(boundary) > 70)) abort();
  return 0;
}
