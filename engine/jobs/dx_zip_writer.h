/* dx_zip_writer.h: writes a ZIP archive of existing files, entries stored
 * (no compression: WAV barely deflates), CRC-32 from zlib, ZIP64 records
 * where sizes or offsets pass 4 GiB. The archive is written to a temporary
 * name next to its destination, synced and renamed into place, so the
 * destination is either absent or complete.
 *
 * Threading: no shared state; any thread may write its own archive. */
#ifndef DX_ZIP_WRITER_H
#define DX_ZIP_WRITER_H

#include <stdint.h>

#include "dx_error.h"

typedef struct {
  const char *name; /* entry name inside the archive (relative, '/' separated, at most 255 bytes) */
  const char *path; /* the file whose bytes the entry holds */
} dx_zip_source;

typedef struct {
  int force_zip64; /* write ZIP64 extra fields and end records even for small archives */
} dx_zip_write_params;

dx_zip_write_params dx_zip_write_default_params(void);

/* Write the n files of src (n from 1 to 65535, names distinct) as the ZIP
 * archive dest. The bytes go to "<dir of dest>/.<name of dest>.tmp.<pid>.<tid>"
 * first, which is fsync'ed and renamed to dest; on failure it is removed and
 * dest is left as it was. p may be NULL (defaults). *size_out, when not NULL,
 * receives the archive size. The caller keeps ownership of everything passed.
 * Errors: DX_ERR_INVALID (no entries, too many, bad or duplicate name),
 * DX_ERR_NOT_FOUND (a source file is missing), DX_ERR_IO (cannot read a
 * source, a source changed size while being copied, cannot write dest),
 * DX_ERR_NOMEM; err says which file. */
dx_status dx_zip_write_files(const char *dest, const dx_zip_source *src, int n, const dx_zip_write_params *p,
                             uint64_t *size_out, dx_errbuf *err);

#endif
