/* dx_zip_writer.h: ZIP archives of existing files, composed as they are
 * sent: entries stored (no compression: WAV barely deflates), each entry's
 * size and CRC-32 known beforehand (kept with the file's row), so every
 * header is final when it is written and the archive's length is known
 * before its first byte (a Content-Length). ZIP64 records where sizes or
 * offsets pass 4 GiB (APPNOTE 4.5.3), so archives of long multi-stem
 * tracks stay readable. Nothing is stored: a track's stems take their own
 * space only.
 *
 * Threading: no shared state; any thread may send its own archive. */
#ifndef DX_ZIP_WRITER_H
#define DX_ZIP_WRITER_H

#include <stdint.h>
#include <time.h>

#include "dx_error.h"

typedef struct {
  const char *name; /* entry name inside the archive (relative, '/' separated, at most 255 bytes) */
  const char *path; /* the file whose bytes the entry holds */
  uint64_t size;    /* its size */
  uint32_t crc;     /* its CRC-32 (dx_zip_file_crc) */
} dx_zip_member;

/* Where the archive's bytes go: 0, or nonzero to stop (the reader left). */
typedef int (*dx_zip_out_fn)(void *ctx, const void *buf, size_t n);

/* CRC-32 (zlib's) and size of the file at path. DX_ERR_NOT_FOUND, DX_ERR_IO. */
dx_status dx_zip_file_crc(const char *path, uint32_t *crc, uint64_t *size, dx_errbuf *err);

/* DX_OK when the n members (1 to 65535) have valid, distinct names, else
 * DX_ERR_INVALID with the reason. */
dx_status dx_zip_check(const dx_zip_member *m, int n, dx_errbuf *err);

/* The length of the archive of the n members: what dx_zip_stream sends. */
uint64_t dx_zip_size(const dx_zip_member *m, int n, int force_zip64);

/* Send the archive of the n members to out: local header, the file's
 * bytes, ..., central directory, end records. Every entry is dated mtime.
 * force_zip64 writes ZIP64 fields and records even for small archives.
 * Errors: those of dx_zip_check; DX_ERR_NOT_FOUND (a file is missing),
 * DX_ERR_IO (a file cannot be read, or its size or CRC is not the one
 * given: the bytes sent so far are then not a valid archive; out stopped);
 * err names the file. */
dx_status dx_zip_stream(const dx_zip_member *m, int n, int force_zip64, time_t mtime, dx_zip_out_fn out, void *ctx,
                        dx_errbuf *err);

#endif
