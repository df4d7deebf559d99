/* zip.c: bounds-checked zip reader over a memory buffer (see dx_zip.h).
 * Every offset read from the archive is checked against its size before use.
 * Threading: no shared state. */
#include "dx_zip.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_EOCD 0x06054b50u
#define SIG_EOCD64 0x06064b50u
#define SIG_LOC64 0x07064b50u

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24); }
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | ((uint64_t)rd32(p + 4) << 32); }

/* 1 if [off, off+len) lies inside [0, size). */
static int in_range(uint64_t off, uint64_t len, size_t size) { return off <= size && len <= size - off; }

static dx_status find_eocd(const uint8_t *d, size_t size, size_t *pos, dx_errbuf *err) {
  if (size < 22) return dx_fail(err, DX_ERR_MODEL, "not a zip archive (%zu bytes)", size);
  size_t lo = size > 22 + 65535 ? size - 22 - 65535 : 0;
  for (size_t i = size - 22 + 1; i-- > lo;) {
    if (rd32(d + i) == SIG_EOCD && i + 22 + (size_t)rd16(d + i + 20) <= size) {
      *pos = i;
      return DX_OK;
    }
  }
  return dx_fail(err, DX_ERR_MODEL, "not a zip archive (no end of central directory record)");
}

/* Apply a ZIP64 extended-information extra field to the fields that are saturated. */
static dx_status zip64_extra(const uint8_t *ex, size_t exlen, uint64_t *size, uint64_t *csize, uint64_t *off,
                             dx_errbuf *err) {
  size_t p = 0;
  while (p + 4 <= exlen) {
    uint16_t id = rd16(ex + p), len = rd16(ex + p + 2);
    if (p + 4 + len > exlen) return dx_fail(err, DX_ERR_MODEL, "zip: extra field runs past its entry");
    if (id == 0x0001) {
      const uint8_t *f = ex + p + 4;
      size_t q = 0;
      if (*size == 0xffffffffu) { if (q + 8 > len) goto bad; *size = rd64(f + q); q += 8; }
      if (*csize == 0xffffffffu) { if (q + 8 > len) goto bad; *csize = rd64(f + q); q += 8; }
      if (*off == 0xffffffffu) { if (q + 8 > len) goto bad; *off = rd64(f + q); q += 8; }
      return DX_OK;
    }
    p += 4 + (size_t)len;
  }
  if (*size == 0xffffffffu || *csize == 0xffffffffu || *off == 0xffffffffu)
    return dx_fail(err, DX_ERR_MODEL, "zip: saturated sizes without a ZIP64 extra field");
  return DX_OK;
bad:
  return dx_fail(err, DX_ERR_MODEL, "zip: short ZIP64 extra field");
}

dx_status dx_zip_open(dx_zip *z, const void *data, size_t size, size_t max_entries, dx_errbuf *err) {
  memset(z, 0, sizeof *z);
  const uint8_t *d = data;
  size_t eocd = 0;
  dx_status st = find_eocd(d, size, &eocd, err);
  if (st) return st;
  uint64_t n = rd16(d + eocd + 10), cd_size = rd32(d + eocd + 12), cd_off = rd32(d + eocd + 16);
  if (n == 0xffff || cd_size == 0xffffffffu || cd_off == 0xffffffffu) {
    if (eocd < 20 || rd32(d + eocd - 20) != SIG_LOC64)
      return dx_fail(err, DX_ERR_MODEL, "zip: ZIP64 archive without a ZIP64 locator");
    uint64_t e64 = rd64(d + eocd - 20 + 8);
    if (!in_range(e64, 56, size) || rd32(d + e64) != SIG_EOCD64)
      return dx_fail(err, DX_ERR_MODEL, "zip: bad ZIP64 end of central directory record");
    n = rd64(d + e64 + 32);
    cd_size = rd64(d + e64 + 40);
    cd_off = rd64(d + e64 + 48);
  }
  if (!in_range(cd_off, cd_size, size)) return dx_fail(err, DX_ERR_MODEL, "zip: central directory outside the archive");
  if (n > max_entries) return dx_fail(err, DX_ERR_TOO_LARGE, "zip: %llu entries (limit %zu)", (unsigned long long)n, max_entries);
  if (n > cd_size / 46) return dx_fail(err, DX_ERR_MODEL, "zip: %llu entries cannot fit a %llu-byte directory",
                                       (unsigned long long)n, (unsigned long long)cd_size);
  z->entries = calloc(n ? n : 1, sizeof *z->entries);
  z->names = malloc(cd_size + 1);
  if (!z->entries || !z->names) { dx_zip_close(z); return DX_ERR_NOMEM; }
  const uint8_t *cd = d + cd_off;
  size_t p = 0, np = 0;
  for (uint64_t i = 0; i < n; i++) {
    if (p + 46 > cd_size || rd32(cd + p) != SIG_CENTRAL) {
      dx_zip_close(z);
      return dx_fail(err, DX_ERR_MODEL, "zip: damaged central directory entry %llu", (unsigned long long)i);
    }
    const uint8_t *h = cd + p;
    size_t nl = rd16(h + 28), el = rd16(h + 30), cl = rd16(h + 32);
    if (p + 46 + nl + el + cl > cd_size) {
      dx_zip_close(z);
      return dx_fail(err, DX_ERR_MODEL, "zip: central directory entry %llu runs past the directory", (unsigned long long)i);
    }
    dx_zip_entry *e = &z->entries[i];
    e->method = rd16(h + 10);
    e->crc = rd32(h + 16);
    e->comp_size = rd32(h + 20);
    e->size = rd32(h + 24);
    e->local_off = rd32(h + 42);
    st = zip64_extra(h + 46 + nl, el, &e->size, &e->comp_size, &e->local_off, err);
    if (st) { dx_zip_close(z); return st; }
    if (memchr(h + 46, 0, nl)) { dx_zip_close(z); return dx_fail(err, DX_ERR_MODEL, "zip: NUL in an entry name"); }
    memcpy(z->names + np, h + 46, nl);
    z->names[np + nl] = 0;
    e->name = z->names + np;
    np += nl + 1; /* nl + 1 <= 46 + nl: fits in cd_size + 1 */
    p += 46 + nl + el + cl;
  }
  z->data = d;
  z->size = size;
  z->n = (size_t)n;
  return DX_OK;
}

void dx_zip_close(dx_zip *z) {
  if (!z) return;
  free(z->entries);
  free(z->names);
  memset(z, 0, sizeof *z);
}

const dx_zip_entry *dx_zip_find(const dx_zip *z, const char *name) {
  for (size_t i = 0; i < z->n; i++)
    if (!strcmp(z->entries[i].name, name)) return &z->entries[i];
  return NULL;
}

dx_status dx_zip_read(const dx_zip *z, const dx_zip_entry *e, size_t max_size, const uint8_t **out, size_t *n,
                      int *owned, dx_errbuf *err) {
  *out = NULL;
  *n = 0;
  *owned = 0;
  if (!in_range(e->local_off, 30, z->size) || rd32(z->data + e->local_off) != SIG_LOCAL)
    return dx_fail(err, DX_ERR_MODEL, "zip: bad local header for %s", e->name);
  const uint8_t *h = z->data + e->local_off;
  uint64_t start = e->local_off + 30 + (uint64_t)rd16(h + 26) + rd16(h + 28);
  if (!in_range(start, e->comp_size, z->size))
    return dx_fail(err, DX_ERR_MODEL, "zip: entry %s runs past the end of the archive", e->name);
  if (e->size > max_size)
    return dx_fail(err, DX_ERR_TOO_LARGE, "zip: entry %s is %llu bytes (limit %zu)", e->name,
                   (unsigned long long)e->size, max_size);
  const uint8_t *src = z->data + start;
  if (e->method == 0) {
    if (e->comp_size != e->size) return dx_fail(err, DX_ERR_MODEL, "zip: stored entry %s has two sizes", e->name);
    *out = src;
  } else if (e->method == 8) {
    uint8_t *buf = malloc(e->size ? e->size : 1);
    if (!buf) return DX_ERR_NOMEM;
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, -MAX_WBITS) != Z_OK) { free(buf); return DX_ERR_NOMEM; }
    uint64_t in_left = e->comp_size, out_done = 0;
    int rc = Z_OK;
    zs.next_in = (Bytef *)src;
    while (rc == Z_OK) {
      uInt in_chunk = in_left > 0x40000000u ? 0x40000000u : (uInt)in_left;
      zs.next_in = (Bytef *)src + (e->comp_size - in_left);
      zs.avail_in = in_chunk;
      uint64_t out_left = e->size - out_done;
      uInt out_chunk = out_left > 0x40000000u ? 0x40000000u : (uInt)out_left;
      zs.next_out = buf + out_done;
      zs.avail_out = out_chunk;
      rc = inflate(&zs, Z_NO_FLUSH);
      in_left -= in_chunk - zs.avail_in;
      out_done += out_chunk - zs.avail_out;
      if (rc == Z_OK && zs.avail_out == out_chunk && zs.avail_in == in_chunk) rc = Z_BUF_ERROR; /* no progress */
    }
    inflateEnd(&zs);
    if (rc != Z_STREAM_END || out_done != e->size) {
      free(buf);
      return dx_fail(err, DX_ERR_MODEL, "zip: entry %s does not inflate to its size", e->name);
    }
    *out = buf;
    *owned = 1;
  } else {
    return dx_fail(err, DX_ERR_UNSUPPORTED, "zip: entry %s uses compression method %u", e->name, e->method);
  }
  uLong crc = crc32_z(0L, Z_NULL, 0);
  crc = crc32_z(crc, *out, (z_size_t)e->size);
  if ((uint32_t)crc != e->crc) {
    if (*owned) free((void *)*out);
    *out = NULL;
    *owned = 0;
    return dx_fail(err, DX_ERR_MODEL, "zip: CRC mismatch in %s", e->name);
  }
  *n = (size_t)e->size;
  return DX_OK;
}
