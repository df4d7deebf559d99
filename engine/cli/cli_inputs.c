/* cli_inputs.c: the audio files a batch command (`demix analyze`, `demix
 * separate`) works through, from its arguments (see dx_cli.h). A folder
 * argument stands for its audio files at any depth, so a whole library
 * (Artist/Album/01.flac) can be named at once; each file keeps the folder
 * it lies in below the argument, which `separate` mirrors in its output;
 * `separate`'s own output folder is not entered (dx_cli_inputs_skip).
 * Single-threaded. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "dx_cli.h"

#define MAX_DEPTH 32 /* deeper folders are left out (and said so) */

static int is_audio_name(const char *name) {
  static const char *const ext[] = {"wav", "wave", "flac", "ogg", "oga", "opus", "mp3", "aif", "aiff"};
  const char *dot = strrchr(name, '.');
  if (!dot || name[0] == '.' || dot[1] == 0) return 0;
  for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++)
    if (!strcasecmp(dot + 1, ext[i])) return 1;
  return 0;
}

static int add(dx_cli_inputs *l, const char *path, const char *rel) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? 2 * l->cap : 16;
    dx_cli_input *v = realloc(l->v, cap * sizeof *v);
    if (!v) return -1;
    l->v = v;
    l->cap = cap;
  }
  char *p = strdup(path), *r = strdup(rel);
  if (!p || !r) {
    free(p);
    free(r);
    return -1;
  }
  l->v[l->n++] = (dx_cli_input){p, r};
  return 0;
}

static int skipped(const dx_cli_inputs *l, const struct stat *sb) {
  for (int i = 0; i < l->n_skip; i++)
    if (l->skip[i].dev == (unsigned long long)sb->st_dev && l->skip[i].ino == (unsigned long long)sb->st_ino) return 1;
  return 0;
}

void dx_cli_inputs_skip(dx_cli_inputs *l, const char *dir) {
  struct stat sb;
  if (l->n_skip < (int)(sizeof l->skip / sizeof l->skip[0]) && stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode)) {
    l->skip[l->n_skip].dev = (unsigned long long)sb.st_dev;
    l->skip[l->n_skip++].ino = (unsigned long long)sb.st_ino;
  }
}

static int cmp_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The entries of folder dir (rel below the argument) in name order: audio
 * files added, folders entered; hidden entries and links to folders are
 * skipped (a link can lead back up the tree). A folder that cannot be read
 * is said and marked in l->unreadable. -1 when out of memory, else 0. */
static int walk(dx_cli_inputs *l, const char *dir, const char *rel, int depth) {
  if (depth > MAX_DEPTH) {
    dx_cli_error("%s: folders nested deeper than %d are left out", dir, MAX_DEPTH);
    return 0;
  }
  DIR *d = opendir(dir);
  if (!d) {
    dx_cli_error("cannot read folder %s", dir);
    l->unreadable = 1;
    return 0;
  }
  char **names = NULL;
  size_t n = 0, cap = 0;
  int rc = 0;
  struct dirent *e;
  while ((e = readdir(d)) && !rc) {
    if (e->d_name[0] == '.') continue;
    if (n == cap) {
      char **v = realloc(names, (cap = cap ? 2 * cap : 64) * sizeof *v);
      if (!v) rc = -1;
      else names = v;
    }
    if (!rc && !(names[n++] = strdup(e->d_name))) rc = -1;
  }
  closedir(d);
  if (!rc && n) qsort(names, n, sizeof *names, cmp_name);
  for (size_t i = 0; i < n && !rc; i++) {
    size_t lp = strlen(dir) + strlen(names[i]) + 2, lr = strlen(rel) + strlen(names[i]) + 2;
    char *path = malloc(lp), *sub = malloc(lr);
    if (!path || !sub) {
      rc = -1;
    } else {
      snprintf(path, lp, "%s/%s", dir, names[i]);
      snprintf(sub, lr, "%s%s%s", rel, *rel ? "/" : "", names[i]);
      struct stat ls, sb;
      if (lstat(path, &ls) == 0 && S_ISDIR(ls.st_mode)) {
        if (skipped(l, &ls)) fprintf(stderr, "Leaving out %s: it is the output folder\n", path);
        else rc = walk(l, path, sub, depth + 1);
      } else if (is_audio_name(names[i]) && stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) {
        if (add(l, path, rel)) rc = -1;
      }
    }
    free(path);
    free(sub);
  }
  for (size_t i = 0; i < n; i++) free(names[i]);
  free(names);
  return rc;
}

int dx_cli_inputs_add(dx_cli_inputs *l, const char *arg) {
  struct stat sb;
  int rc;
  if (stat(arg, &sb) == 0 && S_ISDIR(sb.st_mode)) {
    /* "lib/" and "lib" name the same files */
    size_t n = strlen(arg);
    while (n > 1 && arg[n - 1] == '/') n--;
    char *dir = strndup(arg, n);
    rc = dir ? walk(l, dir, "", 0) : -1;
    free(dir);
    l->folders++;
  } else {
    rc = add(l, arg, ""); /* as given: a missing or undecodable file fails when its turn comes */
  }
  if (rc < 0) {
    dx_cli_error("out of memory");
    return 1;
  }
  return 0;
}

void dx_cli_inputs_free(dx_cli_inputs *l) {
  for (size_t i = 0; i < l->n; i++) {
    free(l->v[i].path);
    free(l->v[i].rel);
  }
  free(l->v);
  *l = (dx_cli_inputs){0};
}
