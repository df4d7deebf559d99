/* fuzz_json_body.c: the JSON request-body parser. An accepted body must be
 * an object that serialises and parses back. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dx_query.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  json_object *o = NULL;
  dx_errbuf err;
  dx_status st = dx_json_parse_object((const char *)data, size, &o, &err);
  if (st == DX_OK) {
    if (!json_object_is_type(o, json_type_object)) abort();
    const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
    json_object *back = NULL;
    if (dx_json_parse_object(s, strlen(s), &back, &err) != DX_OK) abort();
    json_object_put(back);
  } else if (o != NULL || (st != DX_ERR_BAD_JSON && st != DX_ERR_VALIDATION_ERROR)) {
    abort();
  }
  json_object_put(o);
  return 0;
}
