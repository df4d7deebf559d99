/* dx_checkpoint.h: an official Demucs checkpoint (`.th`) read into memory.
 *
 * A `.th` file is a torch.save zip archive: `<stem>/data.pkl` (a pickle,
 * protocol 2) and `<stem>/data/<key>` raw little-endian storages. The pickle
 * is interpreted without executing anything (engine/models/pickle.c) and only
 * the globals model files use are accepted; the result is a dict with
 * `klass`, `args`, `kwargs`, `state` and `training_args`. This module turns it
 * into: the class name, the constructor kwargs as a small value tree, and the
 * state dict as float32 contiguous host tensors (fp16/fp32/fp64 storages are
 * converted, views with any strides and offsets are gathered).
 *
 * Threading: loading is reentrant; a loaded dx_checkpoint is read-only and
 * may be read from several threads. */
#ifndef DX_CHECKPOINT_H
#define DX_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "dx_error.h"

#define DX_CKPT_MAX_DIMS 8

/* A Python value from the pickle (kwargs and training_args use these). */
typedef enum {
  DX_PY_NONE = 0,
  DX_PY_BOOL,
  DX_PY_INT,      /* i */
  DX_PY_FLOAT,    /* f */
  DX_PY_STR,      /* s (UTF-8, NUL-terminated), n = byte length */
  DX_PY_BYTES,    /* s, n */
  DX_PY_TUPLE,    /* items[n] */
  DX_PY_LIST,     /* items[n] */
  DX_PY_DICT,     /* keys[n], items[n] (also OrderedDict) */
  DX_PY_FRACTION, /* num, den (fractions.Fraction) */
  DX_PY_GLOBAL,   /* module, name: an allowed class such as demucs.htdemucs HTDemucs */
  DX_PY_TENSOR,   /* a tensor of the state dict (see dx_ckpt_tensor) */
  DX_PY_STORAGE   /* a persistent-id storage reference (internal) */
} dx_py_type;

typedef struct dx_pyval dx_pyval;
struct dx_pyval {
  dx_py_type type;
  int64_t i;            /* BOOL (0/1), INT */
  double f;             /* FLOAT */
  int64_t num, den;     /* FRACTION (den > 0) */
  const char *s;        /* STR, BYTES; GLOBAL: module */
  const char *name;     /* GLOBAL: name */
  size_t n;             /* STR/BYTES length; TUPLE/LIST/DICT item count */
  dx_pyval **items;     /* TUPLE/LIST items, DICT values */
  dx_pyval **keys;      /* DICT keys */
  void *ext;            /* TENSOR/STORAGE: loader-private */
};

/* One state-dict entry, float32 contiguous row-major in host memory. */
typedef struct {
  const char *name;            /* e.g. "encoder.0.conv.weight" */
  int ndim;
  int64_t shape[DX_CKPT_MAX_DIMS];
  size_t numel;
  float *data;                 /* owned by the checkpoint */
  int src_bits;                /* 16, 32 or 64: the storage's float width in the file */
} dx_ckpt_tensor;

typedef struct dx_checkpoint dx_checkpoint;

/* Resource limits for hostile files (dx_checkpoint_default_limits()). */
typedef struct {
  size_t max_file_bytes;     /* whole archive, default 4 GiB */
  size_t max_pickle_bytes;   /* uncompressed data.pkl, default 64 MiB */
  size_t max_stack;          /* pickle stack depth (values + marks), default 1<<20 */
  size_t max_memo;           /* memo entries, default 1<<20 */
  size_t max_string;         /* one string/bytes value, default 16 MiB */
  size_t max_container;      /* items in one tuple/list/dict, default 1<<22 */
  size_t max_tensors;        /* state-dict entries, default 1<<16 */
  size_t max_total_floats;   /* sum of tensor elements, default 1<<31 */
} dx_checkpoint_limits;

dx_checkpoint_limits dx_checkpoint_default_limits(void);

/* Read a checkpoint file. On success *out is the caller's (dx_checkpoint_free).
 * Errors: DX_ERR_IO (cannot read), DX_ERR_MODEL (not a zip / damaged archive /
 * malformed pickle / bad tensor or storage), DX_ERR_PICKLE_GLOBAL (the pickle
 * names a global outside the allow-list; err names it), DX_ERR_TOO_LARGE (a
 * limit was exceeded), DX_ERR_NOMEM. err gets the details. */
dx_status dx_checkpoint_load(const char *path, dx_checkpoint **out, dx_errbuf *err);
/* The same from memory: data is only read during the call (not kept).
 * limits may be NULL (defaults). */
dx_status dx_checkpoint_load_buffer(const void *data, size_t size, const dx_checkpoint_limits *limits,
                                    dx_checkpoint **out, dx_errbuf *err);
void dx_checkpoint_free(dx_checkpoint *ck); /* NULL is a no-op */

/* The class: module and name of `klass`, e.g. "demucs.htdemucs", "HTDemucs". */
const char *dx_checkpoint_class_module(const dx_checkpoint *ck);
const char *dx_checkpoint_class_name(const dx_checkpoint *ck);

/* kwargs (a DX_PY_DICT; never NULL, possibly empty) and one kwarg by name
 * (NULL when absent). training_args likewise (DX_PY_DICT or whatever the file
 * holds; never NULL). Values belong to the checkpoint. */
const dx_pyval *dx_checkpoint_kwargs(const dx_checkpoint *ck);
const dx_pyval *dx_checkpoint_kwarg(const dx_checkpoint *ck, const char *name);
const dx_pyval *dx_checkpoint_training_args(const dx_checkpoint *ck);

/* Typed kwarg readers with the class default when the kwarg is absent.
 * Return DX_ERR_MODEL (err names the kwarg) when present with a wrong type.
 * _int accepts INT and BOOL; _double accepts INT, FLOAT, BOOL and FRACTION;
 * _bool accepts BOOL and INT. */
dx_status dx_checkpoint_kwarg_int(const dx_checkpoint *ck, const char *name, long long def, long long *out,
                                  dx_errbuf *err);
dx_status dx_checkpoint_kwarg_double(const dx_checkpoint *ck, const char *name, double def, double *out,
                                     dx_errbuf *err);
dx_status dx_checkpoint_kwarg_bool(const dx_checkpoint *ck, const char *name, int def, int *out, dx_errbuf *err);
/* A STR kwarg (def when absent; NULL result for None). */
dx_status dx_checkpoint_kwarg_str(const dx_checkpoint *ck, const char *name, const char *def, const char **out,
                                  dx_errbuf *err);

/* State dict. Tensors stay valid until dx_checkpoint_free. */
size_t dx_checkpoint_n_tensors(const dx_checkpoint *ck);
const dx_ckpt_tensor *dx_checkpoint_tensor_at(const dx_checkpoint *ck, size_t i);
const dx_ckpt_tensor *dx_checkpoint_find(const dx_checkpoint *ck, const char *name); /* NULL when absent */
/* Find a tensor and check its shape (ndim entries of shape; -1 = any).
 * NULL with DX_ERR_MODEL in *st and err when missing or shaped otherwise. */
const dx_ckpt_tensor *dx_checkpoint_expect(const dx_checkpoint *ck, const char *name, int ndim, const int64_t *shape,
                                           dx_status *st, dx_errbuf *err);
/* Sum of numel over the state dict (the model's parameter count for the
 * official layouts: the state dict holds parameters only). */
size_t dx_checkpoint_param_count(const dx_checkpoint *ck);

#endif
