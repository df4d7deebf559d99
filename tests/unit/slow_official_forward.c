/* slow_official_forward.c (slow tier): every graph family at full size, and
 * variants the shared kit lacks, on the CPU against the official
 * implementation, from the cases tools/make-reference makes with seeded
 * random weights (looked for in $DEMIX_REFERENCE/demucs/, each skipped when
 * absent):
 *   - htdemucs_full_random: HTDemucs with the released htdemucs shapes;
 *   - htdemucs_6s_full_random: the released htdemucs_6s shapes (6 sources,
 *     a 384-wide transformer: 48-wide heads);
 *   - hdemucs_full_random: HDemucs with hdemucs_mmi's configuration, on 20 s
 *     (the BiLSTM over several of its 200-step windows);
 *   - demucs_full_random: the time-only Demucs v3 with its defaults
 *     (resampling and normalisation inside the model), on 8 s;
 *   - hdemucs_old_tiny: a small HDemucs with hybrid_old (zero padding
 *     before its STFT, another crop after the inverse), as some MDX models.
 * forward/output within 1e-4 relative L2 (the relative L2 is printed; a
 * failing output is dumped for a look). */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "dx_backend.h"
#include "dx_model.h"
#include "dx_test.h"

static dx_backend *be;

static void forward_case(const char *name) {
  char rel[256];
  snprintf(rel, sizeof rel, "demucs/%s.th", name);
  const char *path = dx_test_ref_path(rel);
  if (access(path, R_OK) != 0) SKIP("%s not in the reference kit (tools/make-reference)", name);
  dx_errbuf err = {{0}};
  if (!be) CHECK(dx_backend_open("cpu", &be, &err) == DX_OK);
  dx_model *m = NULL;
  CHECK_MSG(dx_model_load(path, &m, &err) == DX_OK, "%s: %s", name, err.msg);
  size_t ni = 0, no = 0;
  snprintf(rel, sizeof rel, "demucs/%s/forward_input.f16", name);
  float *in = dx_test_read_tensor(dx_test_ref_path(rel), &ni);
  snprintf(rel, sizeof rel, "demucs/%s/forward_output.f32", name);
  float *ref = dx_test_read_tensor(dx_test_ref_path(rel), &no);
  CHECK(in && ref);
  float *out = ref ? malloc(no * sizeof *out) : NULL;
  if (m && in && out) {
    CHECK_MSG(dx_model_forward(m, be, in, ni / 2, out, &err) == DX_OK, "%s: %s", name, err.msg);
    double e = dx_test_rel_l2(out, ref, no);
    fprintf(stderr, "  %s forward rel L2 %.3g\n", name, e);
    CHECK_MSG(e < 1e-4, "%s: rel L2 %.3g", name, e);
    if (!(e < 1e-4)) dx_test_dump(name, out, no);
  }
  free(in);
  free(ref);
  free(out);
  dx_model_free(m);
}

DX_TEST(htdemucs_forward_matches_reference) { forward_case("htdemucs_full_random"); }
DX_TEST(htdemucs_6s_forward_matches_reference) { forward_case("htdemucs_6s_full_random"); }
DX_TEST(hdemucs_forward_matches_reference) { forward_case("hdemucs_full_random"); }
DX_TEST(demucs_v3_forward_matches_reference) { forward_case("demucs_full_random"); }
DX_TEST(hdemucs_hybrid_old_forward_matches_reference) { forward_case("hdemucs_old_tiny"); }

DX_TEST(zz_release) {
  dx_backend_close(be);
  be = NULL;
}

DX_TEST_MAIN(DX_T(htdemucs_forward_matches_reference), DX_T(htdemucs_6s_forward_matches_reference),
             DX_T(hdemucs_forward_matches_reference),
             DX_T(demucs_v3_forward_matches_reference), DX_T(hdemucs_hybrid_old_forward_matches_reference),
             DX_T(zz_release))
