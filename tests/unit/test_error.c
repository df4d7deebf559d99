/* test_error.c: every status code has a message, a name and an HTTP status;
 * configuration parsing rejects bad values. */
#include <stdlib.h>
#include <string.h>

#include "dx_config.h"
#include "dx_error.h"
#include "dx_test.h"
#include "dx_util.h"

DX_TEST(every_code_has_message_and_name) {
  for (int s = 0; s < DX_STATUS_COUNT; s++) {
    CHECK(strcmp(dx_strerror((dx_status)s), "unknown error") != 0);
    CHECK(strlen(dx_status_name((dx_status)s)) > 0);
    int h = dx_status_http((dx_status)s);
    CHECK(h >= 200 && h < 600);
  }
  CHECK(!strcmp(dx_status_name(DX_ERR_NOT_FOUND), "NOT_FOUND"));
  CHECK(!strcmp(dx_status_name(DX_ERR_MODEL_NOT_INSTALLED), "MODEL_NOT_INSTALLED"));
  CHECK(!strcmp(dx_strerror((dx_status)DX_STATUS_COUNT), "unknown error"));
}

DX_TEST(config_rejects_bad_values) {
  dx_config cfg;
  dx_errbuf err;
  setenv("DEMIX_HTTP_PORT", "9090", 1);
  CHECK(dx_config_load(&cfg, &err) == DX_OK);
  CHECK(cfg.http_port == 9090);
  unsetenv("DEMIX_HTTP_PORT");
  CHECK(dx_config_set(&cfg, "http_port", "abc", &err) == DX_ERR_CONFIG);
  CHECK(dx_config_set(&cfg, "no_such_key", "1", &err) == DX_ERR_CONFIG);
  CHECK(dx_config_set(&cfg, "max_track_seconds", "12.5", &err) == DX_OK && cfg.max_track_seconds == 12.5);
}

DX_TEST(sha256_known_vectors) {
  char hex[65];
  dx_sha256_hex("", 0, hex);
  CHECK(!strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
  dx_sha256_hex("abc", 3, hex);
  CHECK(!strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
  const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  dx_sha256_hex(m, strlen(m), hex);
  CHECK(!strcmp(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"));
}

DX_TEST(uuid_shape) {
  char a[DX_UUID_LEN], b[DX_UUID_LEN];
  CHECK(dx_uuid(a) == DX_OK && dx_uuid(b) == DX_OK);
  CHECK(dx_uuid_valid(a) && dx_uuid_valid(b) && strcmp(a, b));
  CHECK(a[14] == '4');
  CHECK(!dx_uuid_valid("not-a-uuid"));
}

DX_TEST(half_floats_convert_exactly) {
  CHECK(dx_half_to_float(0x3c00) == 1.0f);
  CHECK(dx_half_to_float(0xc000) == -2.0f);
  CHECK(dx_half_to_float(0x7bff) == 65504.0f);
  CHECK(dx_half_to_float(0x0001) == ldexpf(1.0f, -24)); /* smallest subnormal */
  CHECK(dx_half_to_float(0x03ff) == ldexpf(1023.0f, -24)); /* largest subnormal */
  CHECK(isinf(dx_half_to_float(0x7c00)) && dx_half_to_float(0xfc00) < 0);
  CHECK(isnan(dx_half_to_float(0x7e00)));
  CHECK(signbit(dx_half_to_float(0x8000)) && dx_half_to_float(0x8000) == 0.0f);
}

DX_TEST_MAIN(DX_T(every_code_has_message_and_name), DX_T(config_rejects_bad_values), DX_T(sha256_known_vectors),
             DX_T(uuid_shape), DX_T(half_floats_convert_exactly))
