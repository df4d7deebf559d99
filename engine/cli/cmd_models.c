/* cmd_models.c: `demix models list` (every model, installed or not, size,
 * sources, description) and `demix models fetch NAME...` (download a named
 * model's checkpoints into the model folder from models_base_url, resumable,
 * checked against the sha256 prefix in each file name; progress bar on a
 * terminal). Single-threaded. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dx_cli.h"
#include "dx_fetch.h"
#include "dx_registry.h"
#include "dx_util.h"

static void usage(FILE *f) {
  fprintf(f, "usage: demix models list [--repo DIR]\n"
             "       demix models fetch NAME... [--repo DIR] [--base-url URL]\n"
             "The model folder is model_dir from the configuration (DEMIX_MODEL_DIR), or --repo.\n"
             "Downloads come from models_base_url (DEMIX_MODELS_BASE_URL) or --base-url.\n");
}

static void human(long long n, char *out, size_t len) {
  if (n >= 1 << 20)
    snprintf(out, len, "%.1f MB", (double)n / (1 << 20));
  else if (n >= 1024)
    snprintf(out, len, "%.1f kB", (double)n / 1024);
  else
    snprintf(out, len, "%lld B", n);
}

static int list_models(const char *dir) {
  dx_registry_entry *v = NULL;
  int n = 0;
  dx_errbuf err = {{0}};
  if (dx_registry_list(dir, &v, &n, &err) != DX_OK) {
    dx_cli_error("cannot list models: %s", err.msg);
    return 1;
  }
  printf("%-18s %-10s %-10s %-44s %s\n", "NAME", "INSTALLED", "SIZE", "SOURCES", "DESCRIPTION");
  for (int i = 0; i < n; i++) {
    char size[32] = "-", src[256] = "";
    if (v[i].size_bytes > 0) human(v[i].size_bytes, size, sizeof size);
    if (v[i].kind == DX_REG_HPSS) snprintf(size, sizeof size, "0 B");
    for (int k = 0; k < v[i].n_sources; k++)
      snprintf(src + strlen(src), sizeof src - strlen(src), "%s%s", k ? "," : "", v[i].sources[k]);
    if (!*src) snprintf(src, sizeof src, "(from the checkpoint)");
    const char *inst = v[i].installed ? "yes" : (v[i].size_bytes > 0 ? "partial" : "no");
    printf("%-18s %-10s %-10s %-44s %s\n", v[i].name, inst, size, src, v[i].description);
  }
  free(v);
  printf("\nModel folder: %s\n", dir);
  return 0;
}

typedef struct {
  int tty;
  double last;
} bar;

static int on_progress(void *user, const char *file, long long have, long long total) {
  bar *b = user;
  double now = dx_now();
  if (!b->tty || (now - b->last < 0.1 && have != total)) return 0;
  b->last = now;
  char h[32], t[32] = "?";
  human(have, h, sizeof h);
  if (total > 0) human(total, t, sizeof t);
  int pct = total > 0 ? (int)(100.0 * (double)have / (double)total) : 0;
  char cells[31];
  for (int i = 0; i < 30; i++) cells[i] = i < pct * 30 / 100 ? '#' : '.';
  cells[30] = 0;
  fprintf(stderr, "\r  %-22.22s [%s] %3d%%  %s / %s   ", file, cells, pct, h, t);
  fflush(stderr);
  return 0;
}

static int fetch_models(const char *dir, const char *base, char **names, int n) {
  int failures = 0;
  for (int i = 0; i < n; i++) {
    dx_registry_entry e;
    dx_errbuf err = {{0}};
    dx_status st = dx_registry_find(dir, names[i], &e, &err);
    if (st == DX_OK && e.kind == DX_REG_HPSS) {
      printf("%s needs no download\n", e.name);
      continue;
    }
    if (st == DX_OK && e.kind == DX_REG_LOCAL) {
      printf("%s is a local checkpoint (%s); nothing to download\n", e.name, e.files[0]);
      continue;
    }
    if (st != DX_OK) {
      dx_cli_error("%s", *err.msg ? err.msg : dx_strerror(st));
      failures++;
      continue;
    }
    if (e.installed) {
      printf("%s is installed (%d file%s in %s)\n", e.name, e.n_files, e.n_files > 1 ? "s" : "", dir);
      continue;
    }
    bar b = {isatty(2), 0};
    printf("Fetching %s (%d file%s) from %s\n", e.name, e.n_files, e.n_files > 1 ? "s" : "", base);
    fflush(stdout);
    st = dx_fetch_model(&e, base, dir, on_progress, &b, &err);
    if (b.tty) fputc('\n', stderr);
    if (st != DX_OK) {
      dx_cli_error("%s: %s", e.name, *err.msg ? err.msg : dx_strerror(st));
      failures++;
      continue;
    }
    printf("%s installed in %s\n", e.name, dir);
  }
  return failures ? 1 : 0;
}

int dx_cmd_models(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  dx_config cfg;
  if (dx_cli_config(&cfg)) return 1;
  int bad = 0;
  const char *repo = dx_cli_opt(argc, argv, "--repo", &bad);
  const char *base = dx_cli_opt(argc, argv, "--base-url", &bad);
  if (bad) {
    dx_cli_error("--repo and --base-url need a value");
    return 2;
  }
  const char *dir = repo ? repo : cfg.model_dir;
  if (!base) base = cfg.models_base_url;
  if (!strcmp(argv[1], "list")) return list_models(dir);
  if (!strcmp(argv[1], "fetch")) {
    char **names = calloc((size_t)argc, sizeof *names);
    int n = 0;
    for (int i = 2; i < argc; i++) {
      if (!strncmp(argv[i], "--repo", 6) || !strncmp(argv[i], "--base-url", 10)) {
        if (!strchr(argv[i], '=')) i++;
        continue;
      }
      names[n++] = argv[i];
    }
    if (n == 0) {
      free(names);
      dx_cli_error("models fetch needs a model name");
      return 2;
    }
    int rc = fetch_models(dir, base, names, n);
    free(names);
    return rc;
  }
  dx_cli_error("unknown models command '%s'", argv[1]);
  usage(stderr);
  return 2;
}
