/* registry.c: the named separation models (see dx_registry.h): the released
 * Demucs bags with their checkpoint signatures, weights and segments (from
 * the official remote/<name>.yaml files), hpss, and `.th` files found in the model
 * folder. Threading: static tables and file-system reads only. */
#include "dx_registry.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define SRC4 {"drums", "bass", "other", "vocals"}

static const struct {
  const char *name, *description, *remote_dir;
  int n_files;
  const char *files[4];
  int has_weights;
  float weights[4][4];
  double segment;
  int n_sources;
  const char *sources[6];
} builtin[] = {
    {"htdemucs", "Hybrid Transformer Demucs - default 4-stem model", "hybrid_transformer", 1,
     {"955717e8-8726e21a.th"}, 0, {{0}}, 0, 4, SRC4},
    {"htdemucs_ft", "Fine-tuned Hybrid Transformer Demucs - higher quality, slower (bag of 4, one per source)",
     "hybrid_transformer", 4,
     {"f7e0c4bc-ba3fe64a.th", "d12395a8-e57c48e6.th", "92cfc3b6-ef3bcb9c.th", "04573f0d-f3cf25b2.th"}, 1,
     {{1, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 1, 0}, {0, 0, 0, 1}}, 0, 4, SRC4},
    {"htdemucs_6s", "6-stem model (vocals, drums, bass, guitar, piano, other)", "hybrid_transformer", 1,
     {"5c90dfd2-34c22ccb.th"}, 0, {{0}}, 0, 6, {"drums", "bass", "other", "vocals", "guitar", "piano"}},
    {"hdemucs_mmi", "Hybrid Demucs v3 retrained on MusDB + 800 songs", "hybrid_transformer", 1,
     {"75fc33f5-1941ce65.th"}, 0, {{0}}, 44, 4, SRC4},
    {"mdx_extra", "MDX-Net Extra - alternative architecture, good for vocals (bag of 4)", "mdx_final", 4,
     {"e51eebcc-c1b80bdd.th", "a1d90b5c-ae9d2452.th", "5d2d6c55-db83574e.th", "cfa93e08-61801ae1.th"}, 0, {{0}},
     44, 4, SRC4},
};
#define N_BUILTIN (int)(sizeof builtin / sizeof builtin[0])

int dx_registry_name_ok(const char *name) {
  size_t n = name ? strlen(name) : 0;
  if (n == 0 || n > 63 || name[0] == '.') return 0;
  for (size_t i = 0; i < n; i++) {
    char c = name[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
          c == '.'))
      return 0;
  }
  return 1;
}

const char *dx_registry_hash_prefix(const char *file, size_t *len) {
  const char *dash = strchr(file, '-'), *dot = strrchr(file, '.');
  if (!dash || !dot || dot < dash) return NULL;
  size_t n = (size_t)(dot - dash - 1);
  if (n < 8 || n > 64) return NULL;
  for (size_t i = 0; i < n; i++) {
    char c = dash[1 + i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return NULL;
  }
  if (len) *len = n;
  return dash + 1;
}

static void fill_presence(const char *dir, dx_registry_entry *e) {
  e->installed = 1;
  e->size_bytes = 0;
  for (int i = 0; i < e->n_files; i++) {
    char path[1200];
    struct stat sb;
    snprintf(path, sizeof path, "%s/%s", dir, e->files[i]);
    if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode))
      e->size_bytes += (long long)sb.st_size;
    else
      e->installed = 0;
  }
}

static void from_builtin(int b, dx_registry_entry *e) {
  memset(e, 0, sizeof *e);
  snprintf(e->name, sizeof e->name, "%s", builtin[b].name);
  e->kind = DX_REG_BAG;
  snprintf(e->description, sizeof e->description, "%s", builtin[b].description);
  snprintf(e->remote_dir, sizeof e->remote_dir, "%s", builtin[b].remote_dir);
  e->n_files = builtin[b].n_files;
  for (int i = 0; i < e->n_files; i++) snprintf(e->files[i], sizeof e->files[i], "%s", builtin[b].files[i]);
  e->has_weights = builtin[b].has_weights;
  if (e->has_weights) {
    memset(e->weights, 0, sizeof e->weights);
    for (int m = 0; m < e->n_files; m++)
      for (int k = 0; k < 4; k++) e->weights[m][k] = builtin[b].weights[m][k];
  }
  e->segment = builtin[b].segment;
  e->n_sources = builtin[b].n_sources;
  for (int k = 0; k < e->n_sources; k++) snprintf(e->sources[k], sizeof e->sources[k], "%s", builtin[b].sources[k]);
}

static void hpss_entry(dx_registry_entry *e) {
  memset(e, 0, sizeof *e);
  snprintf(e->name, sizeof e->name, "hpss");
  e->kind = DX_REG_HPSS;
  snprintf(e->description, sizeof e->description,
           "Harmonic/percussive separation by median filtering (no weights; stems sum to the mix)");
  e->n_sources = 2;
  snprintf(e->sources[0], sizeof e->sources[0], "harmonic");
  snprintf(e->sources[1], sizeof e->sources[1], "percussive");
  e->installed = 1;
}

static void local_entry(const char *dir, const char *name, dx_registry_entry *e) {
  memset(e, 0, sizeof *e);
  snprintf(e->name, sizeof e->name, "%s", name);
  e->kind = DX_REG_LOCAL;
  snprintf(e->description, sizeof e->description, "checkpoint %s.th in the model folder", name);
  e->n_files = 1;
  snprintf(e->files[0], sizeof e->files[0], "%s.th", name);
  fill_presence(dir, e);
}

/* 1 when file is one of the named bags' checkpoints (not listed on its own). */
static int is_builtin_file(const char *file) {
  for (int b = 0; b < N_BUILTIN; b++)
    for (int i = 0; i < builtin[b].n_files; i++)
      if (!strcmp(builtin[b].files[i], file)) return 1;
  return 0;
}

dx_status dx_registry_find(const char *model_dir, const char *name, dx_registry_entry *out, dx_errbuf *err) {
  if (!dx_registry_name_ok(name)) return dx_fail(err, DX_ERR_INVALID, "bad model name");
  for (int b = 0; b < N_BUILTIN; b++)
    if (!strcmp(builtin[b].name, name)) {
      from_builtin(b, out);
      fill_presence(model_dir, out);
      return DX_OK;
    }
  if (!strcmp(name, "hpss")) {
    hpss_entry(out);
    return DX_OK;
  }
  local_entry(model_dir, name, out);
  if (out->installed) return DX_OK;
  return dx_fail(err, DX_ERR_NOT_FOUND,
                 "unknown model '%s' (named models: htdemucs, htdemucs_ft, htdemucs_6s, hdemucs_mmi, mdx_extra, hpss; "
                 "or a .th file in %s)",
                 name, model_dir);
}

static int cmp_name(const void *a, const void *b) {
  return strcmp(((const dx_registry_entry *)a)->name, ((const dx_registry_entry *)b)->name);
}

dx_status dx_registry_list(const char *model_dir, dx_registry_entry **out, int *n, dx_errbuf *err) {
  int cap = N_BUILTIN + 1 + 16, cnt = 0;
  dx_registry_entry *v = malloc((size_t)cap * sizeof *v);
  if (!v) return DX_ERR_NOMEM;
  for (int b = 0; b < N_BUILTIN; b++) {
    from_builtin(b, &v[cnt]);
    fill_presence(model_dir, &v[cnt++]);
  }
  hpss_entry(&v[cnt++]);
  int first_local = cnt;
  DIR *d = opendir(model_dir);
  if (d) {
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
      size_t len = strlen(de->d_name);
      if (len < 4 || strcmp(de->d_name + len - 3, ".th") != 0 || is_builtin_file(de->d_name)) continue;
      char stem[64];
      if (len - 3 >= sizeof stem) continue;
      memcpy(stem, de->d_name, len - 3);
      stem[len - 3] = 0;
      if (!dx_registry_name_ok(stem) || !strcmp(stem, "hpss")) continue;
      int dup = 0;
      for (int b = 0; b < N_BUILTIN; b++) dup |= !strcmp(builtin[b].name, stem);
      if (dup) continue;
      if (cnt == cap) {
        dx_registry_entry *nv = realloc(v, (size_t)(cap *= 2) * sizeof *v);
        if (!nv) {
          closedir(d);
          free(v);
          return DX_ERR_NOMEM;
        }
        v = nv;
      }
      local_entry(model_dir, stem, &v[cnt]);
      if (v[cnt].installed) cnt++;
    }
    closedir(d);
  }
  qsort(v + first_local, (size_t)(cnt - first_local), sizeof *v, cmp_name);
  (void)err;
  *out = v;
  *n = cnt;
  return DX_OK;
}

void dx_registry_url(const char *base_url, const dx_registry_entry *e, int file_index, char *out, size_t out_len) {
  /* base_url is the root of the official layout: <base>/<remote_dir>/<file>.
   * A mirror keeps that layout; an entry without a folder sits at the root. */
  size_t n = strlen(base_url);
  while (n > 0 && base_url[n - 1] == '/') n--;
  if (e->remote_dir[0])
    snprintf(out, out_len, "%.*s/%s/%s", (int)n, base_url, e->remote_dir, e->files[file_index]);
  else
    snprintf(out, out_len, "%.*s/%s", (int)n, base_url, e->files[file_index]);
}

void dx_registry_fetch_hint(const char *name, char *out, size_t out_len) {
  snprintf(out, out_len, "demix models fetch %s", name);
}
