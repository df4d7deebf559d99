/* fetch.c: checkpoint downloads with libcurl (see dx_fetch.h): resumable
 * through Range requests, checked against the sha256 prefix in the file's
 * name, written to <file>.part and renamed into place.
 * Threading: any thread; curl_global_init runs once under pthread_once. */
#include "dx_fetch.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dx_util.h"

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

dx_status dx_fetch_sha256_file(const char *path, char out[65], dx_errbuf *err) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return dx_fail(err, DX_ERR_IO, "cannot open %s: %s", path, strerror(errno));
  struct stat sb;
  if (fstat(fd, &sb) != 0) {
    close(fd);
    return dx_fail(err, DX_ERR_IO, "cannot stat %s: %s", path, strerror(errno));
  }
  if (sb.st_size == 0) {
    close(fd);
    dx_sha256_hex("", 0, out);
    return DX_OK;
  }
  void *p = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (p == MAP_FAILED) return dx_fail(err, DX_ERR_IO, "cannot map %s: %s", path, strerror(errno));
  dx_sha256_hex(p, (size_t)sb.st_size, out);
  munmap(p, (size_t)sb.st_size);
  return DX_OK;
}

typedef struct {
  FILE *f;
  CURL *curl;
  long long resume; /* bytes already in the .part when the request went out */
  int checked;      /* response code looked at */
  int io_error;
  int discard;      /* an error answer: its body is not the file */
  const char *file;
  dx_fetch_progress_fn progress;
  void *user;
} xfer;

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *ud) {
  xfer *x = ud;
  if (!x->checked) {
    long code = 0;
    curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &code);
    x->checked = 1;
    if (code >= 300) x->discard = 1;
    if (code == 200 && x->resume > 0) {
      /* the server ignored the range: start over */
      if (ftruncate(fileno(x->f), 0) != 0 || fseek(x->f, 0, SEEK_SET) != 0) {
        x->io_error = errno;
        return 0;
      }
      x->resume = 0;
    }
  }
  size_t n = size * nmemb;
  if (x->discard) return n;
  if (fwrite(ptr, 1, n, x->f) != n) {
    x->io_error = errno ? errno : EIO;
    return 0;
  }
  return n;
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow) {
  (void)ultotal;
  (void)ulnow;
  xfer *x = ud;
  if (!x->progress) return 0;
  long long total = dltotal > 0 ? x->resume + (long long)dltotal : 0;
  return x->progress(x->user, x->file, x->resume + (long long)dlnow, total);
}

static long long file_size(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0 ? (long long)sb.st_size : -1;
}

dx_status dx_fetch_file(const char *url, const char *dir, const char *file, const char *sha_prefix,
                        dx_fetch_progress_fn progress, void *user, dx_errbuf *err) {
  pthread_once(&curl_once, curl_init_once);
  char final_path[1200], part[1210];
  snprintf(final_path, sizeof final_path, "%s/%s", dir, file);
  snprintf(part, sizeof part, "%s.part", final_path);
  long long have = file_size(part);
  if (have < 0) have = 0;

  FILE *f = fopen(part, "ab");
  if (!f) return dx_fail(err, DX_ERR_IO, "cannot write %s: %s", part, strerror(errno));
  CURL *curl = curl_easy_init();
  if (!curl) {
    fclose(f);
    return dx_fail(err, DX_ERR_NOMEM, "cannot start a download");
  }
  xfer x = {f, curl, have, 0, 0, 0, file, progress, user};
  char range[48];
  char curl_err[CURL_ERROR_SIZE] = "";
  curl_easy_setopt(curl, CURLOPT_URL, url);
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 5L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &x);
  curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &x);
  curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, curl_err);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 30L);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L); /* give up on a stalled transfer after 60 s */
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, 60L);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "demix/" DEMIX_VERSION);
  if (have > 0) { /* a plain Range header: a server that answers 200 instead restarts the .part (on_data) */
    snprintf(range, sizeof range, "%lld-", have);
    curl_easy_setopt(curl, CURLOPT_RANGE, range);
  }
  CURLcode rc = curl_easy_perform(curl);
  long code = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
  curl_easy_cleanup(curl);
  int close_rc = fclose(f);

  dx_status st = DX_OK;
  if (x.io_error)
    st = dx_fail(err, DX_ERR_IO, "writing %s: %s", part, strerror(x.io_error));
  else if (rc == CURLE_ABORTED_BY_CALLBACK)
    st = dx_fail(err, DX_ERR_CANCELLED, "download of %s stopped", file);
  else if (code == 416 && have > 0)
    st = DX_OK; /* nothing past what we have: the .part is whole; the checksum decides */
  else if (rc != CURLE_OK)
    st = dx_fail(err, DX_ERR_NETWORK, "download of %s failed: %s", url, *curl_err ? curl_err : curl_easy_strerror(rc));
  else if (code >= 400 || (code != 200 && code != 206 && strncmp(url, "file:", 5) != 0))
    st = dx_fail(err, DX_ERR_NETWORK, "download of %s failed: HTTP %ld", url, code);
  else if (close_rc != 0)
    st = dx_fail(err, DX_ERR_IO, "writing %s: %s", part, strerror(errno));
  if (st != DX_OK) {
    if (file_size(part) == 0) unlink(part);
    return st;
  }

  if (sha_prefix && *sha_prefix) {
    char hex[65];
    if ((st = dx_fetch_sha256_file(part, hex, err)) != DX_OK) return st;
    if (strncmp(hex, sha_prefix, strlen(sha_prefix)) != 0) {
      unlink(part);
      return dx_fail(err, DX_ERR_CHECKSUM, "%s: sha256 %.*s... does not match %s from its name; removed", file,
                     (int)strlen(sha_prefix), hex, sha_prefix);
    }
  }
  if (rename(part, final_path) != 0) return dx_fail(err, DX_ERR_IO, "cannot rename %s: %s", part, strerror(errno));
  return DX_OK;
}

dx_status dx_fetch_model(const dx_registry_entry *e, const char *base_url, const char *model_dir,
                         dx_fetch_progress_fn progress, void *user, dx_errbuf *err) {
  if (e->kind != DX_REG_BAG)
    return dx_fail(err, DX_ERR_INVALID, "%s has nothing to download (%s)", e->name,
                   e->kind == DX_REG_HPSS ? "it needs no weights" : "a local checkpoint");
  if (!base_url || !*base_url) return dx_fail(err, DX_ERR_CONFIG, "models_base_url is not set");
  dx_status st = dx_mkdirs(model_dir);
  if (st != DX_OK) return dx_fail(err, st, "cannot create %s", model_dir);
  for (int i = 0; i < e->n_files; i++) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", model_dir, e->files[i]);
    if (file_size(path) > 0) continue;
    char url[2048], prefix[72] = "";
    size_t plen = 0;
    const char *p = dx_registry_hash_prefix(e->files[i], &plen);
    if (p) snprintf(prefix, sizeof prefix, "%.*s", (int)plen, p);
    dx_registry_url(base_url, e, i, url, sizeof url);
    if ((st = dx_fetch_file(url, model_dir, e->files[i], prefix, progress, user, err)) != DX_OK) return st;
  }
  return DX_OK;
}
