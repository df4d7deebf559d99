/* test_fcgi_query.c: the query-string parser and UTF-8 checks. */
#include <string.h>

#include "dx_query.h"
#include "dx_test.h"

static dx_status parse(dx_pool *p, const char *qs, dx_query *q) {
  dx_errbuf err;
  return dx_query_parse(p, qs, strlen(qs), q, &err);
}

DX_TEST(decodes_pairs_in_order) {
  dx_pool *p = dx_pool_create(0);
  dx_query q;
  CHECK(parse(p, "title=Hello+World&artist=Caf%C3%A9&x=%2B%26%3D", &q) == DX_OK);
  CHECK(q.n == 3);
  CHECK(!strcmp(dx_query_get(&q, "title"), "Hello World"));
  CHECK(!strcmp(dx_query_get(&q, "artist"), "Caf\xc3\xa9"));
  CHECK(!strcmp(dx_query_get(&q, "x"), "+&="));
  CHECK(!strcmp(q.items[0].name, "title") && !strcmp(q.items[2].name, "x"));
  CHECK(dx_query_get(&q, "missing") == NULL);
  dx_pool_destroy(p);
}

DX_TEST(repeated_keys_and_empty_pieces) {
  dx_pool *p = dx_pool_create(0);
  dx_query q;
  CHECK(parse(p, "tag=a&&tag=b&flag&=v&tag=", &q) == DX_OK);
  CHECK(dx_query_count(&q, "tag") == 3);
  CHECK(!strcmp(dx_query_get(&q, "tag"), "a"));
  CHECK(!strcmp(dx_query_get(&q, "flag"), ""));
  CHECK(!strcmp(dx_query_get(&q, ""), "v"));
  CHECK(q.n == 5);
  CHECK(parse(p, "", &q) == DX_OK && q.n == 0);
  CHECK(parse(p, "&&&", &q) == DX_OK && q.n == 0);
  CHECK(parse(p, "a=b=c", &q) == DX_OK && !strcmp(dx_query_get(&q, "a"), "b=c"));
  dx_pool_destroy(p);
}

DX_TEST(strict_on_bad_escapes) {
  dx_pool *p = dx_pool_create(0);
  dx_query q;
  const char *bad[] = {"a=%", "a=%4", "a=%zz", "a=%4g", "%=1", "a=%00", "a=%ff", "a=%C3", "a=%ED%A0%80", "k%2=v"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) CHECK_MSG(parse(p, bad[i], &q) == DX_ERR_BAD_REQUEST, "%s", bad[i]);
  CHECK(parse(p, "a=%41%62", &q) == DX_OK && !strcmp(dx_query_get(&q, "a"), "Ab"));
  dx_pool_destroy(p);
}

DX_TEST(too_many_pairs) {
  dx_pool *p = dx_pool_create(0);
  char qs[4000] = "";
  for (int i = 0; i < DX_QUERY_MAX_PAIRS + 1; i++) strcat(qs, "a=1&");
  qs[strlen(qs) - 1] = 0;
  dx_query q;
  CHECK(parse(p, qs, &q) == DX_ERR_BAD_REQUEST);
  qs[strlen(qs) - 4] = 0; /* one pair fewer */
  CHECK(parse(p, qs, &q) == DX_OK && q.n == DX_QUERY_MAX_PAIRS);
  dx_pool_destroy(p);
}

DX_TEST(url_decode_lengths) {
  char out[32];
  CHECK(dx_url_decode(out, "a+b%20c", 7, 1) == 5 && !strcmp(out, "a b c"));
  CHECK(dx_url_decode(out, "a+b", 3, 0) == 3 && !strcmp(out, "a+b"));
  CHECK(dx_url_decode(out, "%2", 2, 1) == -1);
  /* Only n bytes are read: "%41" cut after "%4" is a bad escape. */
  CHECK(dx_url_decode(out, "%41", 2, 1) == -1);
}

DX_TEST(utf8_validation) {
  CHECK(dx_utf8_valid("plain", 5));
  CHECK(dx_utf8_valid("\xe2\x82\xac\xf0\x9f\x8e\xb5", 7));
  CHECK(!dx_utf8_valid("\xc0\xaf", 2));         /* overlong */
  CHECK(!dx_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
  CHECK(!dx_utf8_valid("\xf4\x90\x80\x80", 4)); /* above U+10FFFF */
  CHECK(!dx_utf8_valid("\xe2\x82", 2));         /* truncated */
  CHECK(!dx_utf8_valid("\x80", 1));
  CHECK(dx_utf8_length("a\xe2\x82\xac" "b", 5) == 3);
}

DX_TEST_MAIN(DX_T(decodes_pairs_in_order), DX_T(repeated_keys_and_empty_pieces), DX_T(strict_on_bad_escapes),
             DX_T(too_many_pairs), DX_T(url_decode_lengths), DX_T(utf8_validation))
