/* fuzz_query.c: the query-string parser over arbitrary bytes. Every parsed
 * pair must be valid UTF-8 without NUL, and lookups must find the first value. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dx_query.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  dx_pool *p = dx_pool_create(0);
  if (!p) return 0;
  dx_query q;
  dx_errbuf err;
  if (dx_query_parse(p, (const char *)data, size, &q, &err) == DX_OK) {
    for (size_t i = 0; i < q.n; i++) {
      if (!dx_utf8_valid(q.items[i].name, strlen(q.items[i].name))) abort();
      if (!dx_utf8_valid(q.items[i].value, strlen(q.items[i].value))) abort();
      if (dx_query_get(&q, q.items[i].name) == NULL) abort();
    }
  }
  dx_pool_destroy(p);
  return 0;
}
