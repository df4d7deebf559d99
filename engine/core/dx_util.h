/* dx_util.h: small helpers every part uses: ids, clocks, files, logging.
 * Thread-safe unless noted. */
#ifndef DX_UTIL_H
#define DX_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "dx_error.h"

#define DX_UUID_LEN 37 /* 36 chars + NUL */

/* A random version-4 UUID from the kernel's generator, lower-case. */
dx_status dx_uuid(char out[DX_UUID_LEN]);
/* 1 if s is a canonical lower- or upper-case UUID string. */
int dx_uuid_valid(const char *s);

double dx_now(void);          /* CLOCK_MONOTONIC seconds */
long long dx_unix_time(void); /* wall-clock seconds */

/* mkdir -p with mode 0755. */
dx_status dx_mkdirs(const char *path);
/* Name for a temporary file beside path: path.tmp.<pid>.<n>, n counted per
 * process, so two threads (or processes) never write the same temporary.
 * Returns snprintf's count (>= size: truncated). */
int dx_tmp_path(char *out, size_t size, const char *path);
/* Write data to path through a dx_tmp_path temporary and rename, so readers
 * never see a half file. */
dx_status dx_write_file_atomic(const char *path, const void *data, size_t n);
/* Read a whole file into a malloc'd buffer (NUL-terminated; *n excludes it). */
dx_status dx_read_file(const char *path, char **data, size_t *n);
/* Remove a directory tree; missing is fine. */
dx_status dx_rmtree(const char *path);
/* A scratch file in dir ("" or NULL: /tmp) named .<hint>.scratch.XXXXXX,
 * unlinked at once so that nothing is left behind, whatever happens: its
 * descriptor, or -1 with errno set. */
int dx_scratch_open(const char *dir, const char *hint);
/* write(2) / pread(2) of exactly n bytes (EINTR retried): 0, or -1 on an
 * error or (pread) an early end of file. */
int dx_write_all(int fd, const void *buf, size_t n);
int dx_pread_all(int fd, void *buf, size_t n, long long off);

/* fn on each of n tasks side by side: tasks[0] on the calling thread, the
 * others on threads of their own (a task whose thread cannot start runs
 * on the calling thread instead); returns when all are done. tasks points
 * to n items of size bytes each. */
void dx_run_side_by_side(void *(*fn)(void *), void *tasks, size_t size, int n);

/* IEEE half-precision bits to float (model files and reference tensors). */
float dx_half_to_float(uint16_t h);

/* Hex sha256 of a buffer (65 bytes with NUL). */
void dx_sha256_hex(const void *data, size_t n, char out[65]);

/* Log a line to stderr with time, level and program name (set once). */
void dx_log_init(const char *program);
void dx_log(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define DX_INFO(...) dx_log("info", __VA_ARGS__)
#define DX_WARN(...) dx_log("warn", __VA_ARGS__)
#define DX_ERROR(...) dx_log("error", __VA_ARGS__)

#endif
