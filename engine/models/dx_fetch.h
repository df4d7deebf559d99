/* dx_fetch.h: downloading model checkpoints with libcurl.
 *
 * A file is downloaded to <dir>/<file>.part, resumed with an HTTP Range
 * request when a .part is already there (a server that ignores the range
 * restarts it), checked against the sha256 prefix its official name carries
 * (the hex digits after the dash), and renamed into place. A checksum
 * mismatch removes the .part and leaves no file behind.
 *
 * Threading: any thread; libcurl's global init happens once inside. */
#ifndef DX_FETCH_H
#define DX_FETCH_H

#include "dx_error.h"
#include "dx_registry.h"

/* have/total in bytes (total 0 when the server did not say). Return nonzero
 * to abort the transfer (DX_ERR_CANCELLED; the .part is kept). */
typedef int (*dx_fetch_progress_fn)(void *user, const char *file, long long have, long long total);

/* Download url into dir/file. sha_prefix (hex, may be NULL to skip the
 * check) must match the start of the file's sha256. Returns DX_ERR_NETWORK
 * (connection, HTTP error; the .part is kept for a resume), DX_ERR_CHECKSUM,
 * DX_ERR_IO, DX_ERR_CANCELLED; details in err. */
dx_status dx_fetch_file(const char *url, const char *dir, const char *file, const char *sha_prefix,
                        dx_fetch_progress_fn progress, void *user, dx_errbuf *err);

/* Download every missing file of a registry entry from base_url
 * (dx_registry_url) into model_dir, creating the folder. Files already
 * present are kept. DX_ERR_INVALID for hpss and local models (nothing to
 * fetch). */
dx_status dx_fetch_model(const dx_registry_entry *e, const char *base_url, const char *model_dir,
                         dx_fetch_progress_fn progress, void *user, dx_errbuf *err);

/* Lower-case hex sha256 of a file, read in blocks. */
dx_status dx_fetch_sha256_file(const char *path, char out[65], dx_errbuf *err);

#endif
