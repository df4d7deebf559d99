/* dx_test.c: the unit-test harness (see dx_test.h). */
#include "dx_test.h"

#include "dx_util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int dx_test_failures;

int dx_test_run(const dx_test_case *cases, size_t n, int argc, char **argv) {
  int passed = 0, failed = 0;
  for (size_t i = 0; i < n; i++) {
    if (argc > 1 && !strstr(cases[i].name, argv[1])) continue;
    dx_test_failures = 0;
    fprintf(stderr, "[ RUN  ] %s\n", cases[i].name);
    cases[i].fn();
    if (dx_test_failures) {
      fprintf(stderr, "[ FAIL ] %s\n", cases[i].name);
      failed++;
    } else {
      fprintf(stderr, "[  OK  ] %s\n", cases[i].name);
      passed++;
    }
  }
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}

static const char *join_env(const char *env, const char *fallback, const char *rel) {
  static __thread char buf[4096];
  const char *base = getenv(env);
  if (!base || !*base) base = fallback;
  snprintf(buf, sizeof buf, "%s/%s", base, rel);
  return buf;
}

/* $DEMIX_REFERENCE when set, else the build's default that ctest passes as $DEMIX_REFERENCE_DEFAULT. */
const char *dx_test_ref_path(const char *rel) {
  const char *env = getenv("DEMIX_REFERENCE");
  return join_env(env && *env ? "DEMIX_REFERENCE" : "DEMIX_REFERENCE_DEFAULT", "../shared/reference", rel);
}
const char *dx_test_src_path(const char *rel) { return join_env("DEMIX_SOURCE", ".", rel); }


float *dx_test_read_tensor(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) { fprintf(stderr, "  cannot open %s\n", path); return NULL; }
  fseek(f, 0, SEEK_END);
  long bytes = ftell(f);
  fseek(f, 0, SEEK_SET);
  int half = strlen(path) > 4 && !strcmp(path + strlen(path) - 4, ".f16");
  size_t count = (size_t)bytes / (half ? 2 : 4);
  float *out = malloc(count * sizeof(float) + 1);
  void *raw = malloc((size_t)bytes + 1);
  if (!out || !raw || fread(raw, 1, (size_t)bytes, f) != (size_t)bytes) {
    free(out); free(raw); fclose(f);
    return NULL;
  }
  fclose(f);
  if (half) for (size_t i = 0; i < count; i++) out[i] = dx_half_to_float(((uint16_t *)raw)[i]);
  else memcpy(out, raw, count * 4);
  free(raw);
  *n = count;
  return out;
}

double dx_test_rel_l2(const float *a, const float *b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    double d = (double)a[i] - b[i];
    num += d * d;
    den += (double)b[i] * b[i];
  }
  return den > 0 ? sqrt(num / den) : sqrt(num);
}

const char *dx_test_demix_path(void) {
  static char path[4096];
  const char *b = getenv("DEMIX_BUILD");
  char cwd[2048] = "";
  if (!b || b[0] != '/') {
    if (!getcwd(cwd, sizeof cwd)) cwd[0] = 0;
  }
  snprintf(path, sizeof path, "%s%s%.1900s/demix", cwd, *cwd ? "/" : "", b && *b ? b : ".");
  return path;
}

void dx_test_dump(const char *name, const float *x, size_t n) {
  char path[4096];
  const char *b = getenv("DEMIX_BUILD");
  snprintf(path, sizeof path, "%s/tests/%s.f32", b && *b ? b : ".", name);
  FILE *f = fopen(path, "wb");
  if (!f) return;
  fwrite(x, sizeof(float), n, f);
  fclose(f);
  fprintf(stderr, "  wrote %s\n", path);
}

static long vm_hwm_kib(void) {
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256];
  long v = -1;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "VmHWM: %ld kB", &v) == 1) break;
  fclose(f);
  return v;
}

long dx_test_child_peak_kib(int (*fn)(void *ctx), void *ctx) {
  int fd[2];
  if (pipe(fd)) return -1;
  pid_t pid = fork();
  if (pid < 0) {
    close(fd[0]);
    close(fd[1]);
    return -1;
  }
  if (pid == 0) {
    close(fd[0]);
    long v = fn(ctx) == 0 ? vm_hwm_kib() : -1;
    if (write(fd[1], &v, sizeof v) != sizeof v) _exit(1);
    _exit(0);
  }
  close(fd[1]);
  long v = -1;
  if (read(fd[0], &v, sizeof v) != sizeof v) v = -1;
  close(fd[0]);
  int status;
  waitpid(pid, &status, 0);
  return v;
}
