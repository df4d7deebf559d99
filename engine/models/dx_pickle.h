/* dx_pickle.h: a non-executing pickle interpreter for model files.
 *
 * Implements the data part of pickle protocols 0-2 (and the protocol 4/5
 * framing and memo opcodes) over dx_pyval values. Nothing is ever imported
 * or called: GLOBAL is accepted only for an allow-list of names (the Demucs
 * classes, collections.OrderedDict, fractions.Fraction, the torch storage
 * types and tensor rebuild functions); REDUCE is interpreted only for
 * OrderedDict, Fraction and the torch tensor rebuild functions. Anything else
 * fails with DX_ERR_PICKLE_GLOBAL naming the global. Persistent ids
 * ('storage', <torch *Storage>, key, location, numel) become DX_PY_STORAGE
 * values; _rebuild_tensor_v2 results DX_PY_TENSOR values (dx_py_tensor).
 *
 * Threading: no shared state; values live in the arena of one load. */
#ifndef DX_PICKLE_H
#define DX_PICKLE_H

#include <stddef.h>
#include <stdint.h>

#include "dx_checkpoint.h"
#include "dx_error.h"

typedef enum { DX_DT_F16 = 1, DX_DT_F32, DX_DT_F64, DX_DT_BF16 } dx_storage_dtype;

typedef struct {
  char key[64];            /* storage file name under <archive>/data/ */
  dx_storage_dtype dtype;
  int elsize;              /* bytes per element */
  int64_t numel;           /* elements, as the persistent id says */
} dx_py_storage;

typedef struct {
  const dx_py_storage *storage;
  int64_t offset;          /* in elements */
  int ndim;
  int64_t size[DX_CKPT_MAX_DIMS];
  int64_t stride[DX_CKPT_MAX_DIMS];
} dx_py_tensor;

typedef struct {
  size_t max_stack;        /* values + marks on the stacks */
  size_t max_memo;         /* highest memo index + 1 */
  size_t max_string;       /* bytes in one string */
  size_t max_container;    /* items in one container */
} dx_pickle_limits;

typedef struct dx_pyarena dx_pyarena;

/* Run the pickle data[0..n) to its STOP. *out is the result, allocated with
 * everything else in *arena (the caller frees it with dx_pyarena_free, also
 * on error when *arena is non-NULL). Errors: DX_ERR_MODEL (malformed or
 * truncated pickle, unsupported opcode), DX_ERR_PICKLE_GLOBAL, DX_ERR_TOO_LARGE
 * (a limit), DX_ERR_NOMEM. */
dx_status dx_pickle_load(const uint8_t *data, size_t n, const dx_pickle_limits *lim, dx_pyarena **arena,
                         dx_pyval **out, dx_errbuf *err);
void dx_pyarena_free(dx_pyarena *a); /* NULL is a no-op */

/* Dict lookup by string key (NULL when absent or d is not a dict). */
const dx_pyval *dx_pydict_get(const dx_pyval *d, const char *key);

#endif
