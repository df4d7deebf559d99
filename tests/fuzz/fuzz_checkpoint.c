/* fuzz_checkpoint.c: the model-file loader (zip + pickle + state dict +
 * graph construction) over arbitrary bytes, and the pickle interpreter on
 * the same bytes directly (the archive's CRC check would otherwise keep
 * most mutations out of it). Whatever loads must be self-consistent: every
 * tensor's element count matches its shape, names resolve, and a model built
 * from it reports the same parameter count. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dx_checkpoint.h"
#include "dx_model.h"
#include "dx_model_impl.h"
#include "dx_pickle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  dx_checkpoint_limits lim = dx_checkpoint_default_limits();
  lim.max_pickle_bytes = 1 << 20;
  lim.max_string = 1 << 16;
  lim.max_container = 1 << 16;
  lim.max_stack = 1 << 16;
  lim.max_memo = 1 << 16;
  lim.max_tensors = 4096;
  lim.max_total_floats = 1 << 22;
  dx_errbuf err;
  dx_pickle_limits pl = {lim.max_stack, lim.max_memo, lim.max_string, lim.max_container};
  dx_pyarena *arena = NULL;
  dx_pyval *root = NULL;
  dx_status pst = dx_pickle_load(data, size, &pl, &arena, &root, &err);
  if (pst == DX_OK && !root) abort();
  if (root && root->type == DX_PY_DICT) (void)dx_pydict_get(root, "state");
  dx_pyarena_free(arena);

  dx_checkpoint *ck = NULL;
  if (dx_checkpoint_load_buffer(data, size, &lim, &ck, &err) != DX_OK) {
    if (ck) abort();
    return 0;
  }
  size_t total = 0;
  for (size_t i = 0; i < dx_checkpoint_n_tensors(ck); i++) {
    const dx_ckpt_tensor *t = dx_checkpoint_tensor_at(ck, i);
    size_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= (size_t)t->shape[d];
    if (n != t->numel || !t->name) abort();
    if (dx_checkpoint_find(ck, t->name) == NULL) abort();
    total += n;
  }
  if (total != dx_checkpoint_param_count(ck)) abort();
  if (!dx_checkpoint_kwargs(ck) || dx_checkpoint_kwargs(ck)->type != DX_PY_DICT) abort();
  dx_model *m = NULL;
  if (dx_model_from_checkpoint(ck, &m, &err) == DX_OK) {
    if (dx_model_get_info(m)->params != total) abort();
    dx_model_free(m);
  }
  dx_checkpoint_free(ck);
  return 0;
}
