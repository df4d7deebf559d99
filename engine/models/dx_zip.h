/* dx_zip.h: a bounds-checked reader for zip archives held in memory (the
 * container of torch.save files): central directory, ZIP64 records and
 * extra fields, stored and deflate entries (zlib), CRC-32 checked.
 *
 * Threading: a dx_zip is read-only after dx_zip_open and may be read from
 * several threads; the archive bytes must outlive it. */
#ifndef DX_ZIP_H
#define DX_ZIP_H

#include <stddef.h>
#include <stdint.h>

#include "dx_error.h"

typedef struct {
  const char *name;     /* NUL-terminated copy owned by the dx_zip */
  uint64_t comp_size;   /* bytes in the archive */
  uint64_t size;        /* bytes once extracted */
  uint64_t local_off;   /* offset of the local header */
  uint32_t crc;
  uint16_t method;      /* 0 stored, 8 deflate */
} dx_zip_entry;

typedef struct {
  const uint8_t *data;
  size_t size;
  dx_zip_entry *entries;
  size_t n;
  char *names;          /* storage for entry names */
} dx_zip;

/* Parse the central directory of the archive data[0..size). Errors:
 * DX_ERR_MODEL (not a zip, damaged directory, entry outside the archive),
 * DX_ERR_TOO_LARGE (more than max_entries entries), DX_ERR_NOMEM. On error
 * nothing needs freeing. */
dx_status dx_zip_open(dx_zip *z, const void *data, size_t size, size_t max_entries, dx_errbuf *err);
void dx_zip_close(dx_zip *z); /* releases the directory; NULL is a no-op */

/* Entry by exact name, NULL when absent. */
const dx_zip_entry *dx_zip_find(const dx_zip *z, const char *name);

/* The bytes of an entry. For stored entries *out points into the archive and
 * *owned is 0; deflated entries are inflated into a malloc'd buffer (*owned
 * 1, caller frees). Entries larger than max_size give DX_ERR_TOO_LARGE;
 * unsupported methods DX_ERR_UNSUPPORTED; damage or a CRC mismatch
 * DX_ERR_MODEL. */
dx_status dx_zip_read(const dx_zip *z, const dx_zip_entry *e, size_t max_size, const uint8_t **out, size_t *n,
                      int *owned, dx_errbuf *err);

#endif
