/* dx_registry.h: named separation models.
 *
 * Three kinds of names:
 *   - the released Demucs models (htdemucs, htdemucs_ft, htdemucs_6s,
 *     hdemucs_mmi, mdx_extra): bags of official checkpoint files named
 *     <signature>-<sha256 prefix>.th, with per-source weights and a bag
 *     segment as the official remote/<name>.yaml files give them; installed when every
 *     file is in the model folder (`demix models fetch NAME` downloads them);
 *   - any other `<name>.th` in the model folder: a single checkpoint;
 *   - `hpss`: harmonic/percussive separation by median filtering, no weights,
 *     always installed.
 * Names are [A-Za-z0-9_.-], at most 63 characters, never starting with '.'.
 *
 * Threading: everything here reads static tables and the file system; safe
 * from any thread. */
#ifndef DX_REGISTRY_H
#define DX_REGISTRY_H

#include <stddef.h>

#include "dx_error.h"

#define DX_REGISTRY_MAX_FILES 8
#define DX_REGISTRY_MAX_SOURCES 8

typedef enum { DX_REG_BAG = 1, DX_REG_LOCAL = 2, DX_REG_HPSS = 3 } dx_registry_kind;

typedef struct {
  char name[64];
  dx_registry_kind kind;
  char description[160];
  int n_files;
  char files[DX_REGISTRY_MAX_FILES][80];  /* file names in the model folder */
  char remote_dir[32];                    /* official folder: hybrid_transformer or mdx_final ("" for local) */
  int has_weights;                        /* 0: every weight is 1 */
  float weights[DX_REGISTRY_MAX_FILES][DX_REGISTRY_MAX_SOURCES];
  double segment;                         /* bag segment in seconds (0: each model's own) */
  int n_sources;                          /* 0 when unknown until loaded (local files) */
  char sources[DX_REGISTRY_MAX_SOURCES][32];
  /* filled by dx_registry_find / dx_registry_list from the folder: */
  int installed;                          /* every file present */
  long long size_bytes;                   /* bytes of the files present */
} dx_registry_entry;

/* 1 when name is a well-formed model name. */
int dx_registry_name_ok(const char *name);

/* Resolve name against model_dir. DX_ERR_NOT_FOUND (with a message listing
 * what exists) for an unknown name; an entry that exists but is not
 * installed is returned with DX_OK and installed = 0. */
dx_status dx_registry_find(const char *model_dir, const char *name, dx_registry_entry *out, dx_errbuf *err);

/* Every model: the named ones, hpss, then each other `.th` in model_dir
 * (sorted by name). *out is malloc'd (caller frees); *n its length. */
dx_status dx_registry_list(const char *model_dir, dx_registry_entry **out, int *n, dx_errbuf *err);

/* The sha256 prefix an official file name carries ("955717e8-8726e21a.th"
 * -> "8726e21a"); NULL when the name has none. Points into name. */
const char *dx_registry_hash_prefix(const char *file, size_t *len);

/* Download URL of one file of an entry under base_url. When base_url's last
 * component is one of the official folders (as the default
 * https://dl.fbaipublicfiles.com/demucs/hybrid_transformer is), the file's
 * own official folder replaces it; any other base is a flat mirror holding
 * every file at base_url/<file>. */
void dx_registry_url(const char *base_url, const dx_registry_entry *e, int file_index, char *out, size_t out_len);

/* The command that installs a model, for messages ("demix models fetch NAME"). */
void dx_registry_fetch_hint(const char *name, char *out, size_t out_len);

#endif
