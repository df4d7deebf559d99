/* gpu_models.c: every reference-kit case run on the CUDA backend and
 * compared with the kit, within the CPU tests' tolerances: forward/output
 * (one dx_model_forward call) and separate/output (normalisation plus the
 * long-track procedure, dx_apply_run) by relative L2 error, below 1e-4 where
 * the kit stores float32 (.f32) and below 2e-3 where it stores float16
 * (.f16). Cases: htdemucs_tiny, htdemucs_6s_tiny, hdemucs_tiny, demucs_tiny,
 * bag_tiny (two checkpoints with per-source weights). TF32 is turned off.
 * Without a GPU (or a CUDA build) the program says so and exits 0; without
 * the kit each test skips. Label gpu: tools/test --gpu. */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dx_apply.h"
#include "dx_backend.h"
#include "dx_model.h"
#include "dx_test.h"
#include "dx_util.h"

static dx_backend *gpu;

static int file_exists(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0;
}

/* Path of a case's tensor file "<case>/<stem>.f32" or ".f16", whichever the
 * kit has; *half says which. NULL when neither exists. */
static const char *kit_tensor(const char *kase, const char *stem, int *half) {
  static char buf[1024];
  char rel[256];
  snprintf(rel, sizeof rel, "demucs/%s/%s.f32", kase, stem);
  snprintf(buf, sizeof buf, "%s", dx_test_ref_path(rel));
  *half = 0;
  if (file_exists(buf)) return buf;
  snprintf(rel, sizeof rel, "demucs/%s/%s.f16", kase, stem);
  snprintf(buf, sizeof buf, "%s", dx_test_ref_path(rel));
  *half = 1;
  return file_exists(buf) ? buf : NULL;
}

static void compare(const char *what, const float *out, const float *ref, size_t n, int half) {
  const double tol = half ? 2e-3 : 1e-4;
  size_t bad = 0;
  for (size_t i = 0; i < n; i++)
    if (!isfinite(out[i])) bad++;
  const double rel = dx_test_rel_l2(out, ref, n);
  fprintf(stderr, "  %-28s rel L2 %.3g (tolerance %.0e, reference %s)\n", what, rel, tol, half ? "f16" : "f32");
  CHECK_MSG(bad == 0, "%s: %zu non-finite outputs", what, bad);
  CHECK_MSG(rel < tol, "%s: rel L2 %.3g >= %.0e", what, rel, tol);
  if (bad || !(rel < tol)) {
    char name[128];
    snprintf(name, sizeof name, "gpu_models_%s", what);
    dx_test_dump(name, out, n);
  }
}

static dx_model *load_model(const char *file) {
  char rel[256];
  snprintf(rel, sizeof rel, "demucs/%s", file);
  dx_errbuf err = {{0}};
  dx_model *m = NULL;
  dx_status st = dx_model_load(dx_test_ref_path(rel), &m, &err);
  CHECK_MSG(st == DX_OK, "loading %s: %s: %s", file, dx_strerror(st), err.msg);
  return st == DX_OK ? m : NULL;
}

/* forward/input -> forward/output through one dx_model_forward on the GPU. */
static void forward_case(const char *kase) {
  int half_in, half_out;
  const char *pin = kit_tensor(kase, "forward_input", &half_in);
  if (!pin) {
    fprintf(stderr, "  skipped: %s has no forward case\n", kase);
    return;
  }
  size_t nin = 0, nref = 0;
  float *in = dx_test_read_tensor(pin, &nin);
  const char *pout = kit_tensor(kase, "forward_output", &half_out);
  float *ref = pout ? dx_test_read_tensor(pout, &nref) : NULL;
  char file[128];
  snprintf(file, sizeof file, "%s.th", kase);
  dx_model *m = load_model(file);
  CHECK(in && ref);
  if (!in || !ref || !m) goto done;
  const dx_model_info *info = dx_model_get_info(m);
  const size_t len = nin / (size_t)info->audio_channels;
  CHECK(nref == (size_t)info->n_sources * nin);
  if (nref != (size_t)info->n_sources * nin) goto done;
  float *out = malloc(nref * sizeof *out);
  dx_errbuf err = {{0}};
  dx_status st = dx_model_forward(m, gpu, in, len, out, &err);
  CHECK_MSG(st == DX_OK, "%s forward on CUDA: %s: %s", kase, dx_strerror(st), err.msg);
  char what[96];
  snprintf(what, sizeof what, "%s_forward", kase);
  if (st == DX_OK) compare(what, out, ref, nref, half_out);
  free(out);
done:
  dx_model_free(m);
  free(in);
  free(ref);
}

/* ---- separate: the long-track procedure with forwards on the GPU ---- */

static size_t model_valid(void *user, size_t length) { return dx_model_valid_length((dx_model *)user, length); }
static dx_status model_fwd(void *user, int worker, const float *in, size_t length, float *out, dx_errbuf *err) {
  (void)worker;
  return dx_model_forward((dx_model *)user, gpu, in, length, out, err);
}

static dx_apply_model apply_of(dx_model *m) {
  const dx_model_info *info = dx_model_get_info(m);
  dx_apply_model a = {info->n_sources, info->audio_channels, info->samplerate, info->segment,
                      info->klass == DX_MODEL_HTDEMUCS, model_valid, model_fwd, m};
  return a;
}

/* separate/input -> separate/output with models[0..n) (weights [n][sources] or NULL). */
static void separate_case(const char *kase, dx_model **models, int n, const float *weights) {
  int half_in, half_out;
  const char *pin = kit_tensor(kase, "separate_input", &half_in);
  if (!pin) {
    fprintf(stderr, "  skipped: %s has no separate case\n", kase);
    return;
  }
  size_t nin = 0, nref = 0;
  float *in = dx_test_read_tensor(pin, &nin);
  const char *pout = kit_tensor(kase, "separate_output", &half_out);
  float *ref = pout ? dx_test_read_tensor(pout, &nref) : NULL;
  CHECK(in && ref);
  dx_apply_model am[4];
  for (int i = 0; i < n; i++) am[i] = apply_of(models[i]);
  if (!in || !ref || nref != (size_t)am[0].n_sources * nin) {
    CHECK(in && ref && nref == (size_t)am[0].n_sources * nin);
    free(in), free(ref);
    return;
  }
  dx_apply_params p = dx_apply_default_params();
  p.shifts = 0;
  p.overlap = 0.25;
  p.split = 1;
  p.normalize = 1;
  p.jobs = 1;
  float *out = malloc(nref * sizeof *out);
  dx_errbuf err = {{0}};
  dx_status st = dx_apply_run(am, n, weights, in, nin / (size_t)am[0].channels, &p, out, &err);
  CHECK_MSG(st == DX_OK, "%s separate on CUDA: %s: %s", kase, dx_strerror(st), err.msg);
  char what[96];
  snprintf(what, sizeof what, "%s_separate", kase);
  if (st == DX_OK) compare(what, out, ref, nref, half_out);
  free(out), free(in), free(ref);
}

static void single_case(const char *kase) {
  char rel[256];
  snprintf(rel, sizeof rel, "demucs/%s/manifest.json", kase);
  if (!file_exists(dx_test_ref_path(rel))) {
    fprintf(stderr, "  skipped: reference kit case %s not found\n", kase);
    return;
  }
  forward_case(kase);
  char file[128];
  snprintf(file, sizeof file, "%s.th", kase);
  dx_model *m = load_model(file);
  if (m) separate_case(kase, &m, 1, NULL);
  dx_model_free(m);
}

DX_TEST(htdemucs_tiny) { single_case("htdemucs_tiny"); }
DX_TEST(htdemucs_6s_tiny) { single_case("htdemucs_6s_tiny"); }
DX_TEST(hdemucs_tiny) { single_case("hdemucs_tiny"); }
DX_TEST(demucs_tiny) { single_case("demucs_tiny"); }

DX_TEST(bag_tiny) {
  json_object *man = json_object_from_file(dx_test_ref_path("demucs/bag_tiny/manifest.json"));
  if (!man) SKIP("reference kit case bag_tiny not found");
  json_object *jm = NULL, *jw = NULL;
  CHECK(json_object_object_get_ex(man, "models", &jm) && json_object_object_get_ex(man, "weights", &jw));
  const int n = jm ? (int)json_object_array_length(jm) : 0;
  CHECK(n >= 1 && n <= 4 && jw && (int)json_object_array_length(jw) == n);
  dx_model *models[4] = {NULL};
  float weights[4 * DX_MODEL_MAX_SOURCES];
  int ok = n >= 1 && n <= 4 && jw && (int)json_object_array_length(jw) == n;
  for (int i = 0; ok && i < n; i++) {
    models[i] = load_model(json_object_get_string(json_object_array_get_idx(jm, i)));
    ok = models[i] != NULL;
    if (!ok) break;
    const int ns = dx_model_get_info(models[i])->n_sources;
    json_object *row = json_object_array_get_idx(jw, i);
    ok = row && (int)json_object_array_length(row) == ns;
    for (int k = 0; ok && k < ns; k++)
      weights[i * ns + k] = (float)json_object_get_double(json_object_array_get_idx(row, k));
  }
  CHECK(ok);
  if (ok) separate_case("bag_tiny", models, n, weights);
  for (int i = 0; i < 4; i++) dx_model_free(models[i]);
  json_object_put(man);
}

int main(int argc, char **argv) {
  static const dx_test_case cases[] = {DX_T(htdemucs_tiny), DX_T(htdemucs_6s_tiny), DX_T(hdemucs_tiny),
                                       DX_T(demucs_tiny), DX_T(bag_tiny)};
  dx_log_init("gpu_models"); /* CUDA errors are logged (dx_cuda_report) */
  char desc[128];
  if (!dx_backend_cuda_available(desc, sizeof desc)) {
    printf("gpu_models: skipped: no CUDA device (or a build without the CUDA backend)\n");
    return 0;
  }
  setenv("DEMIX_CUDA_TF32", "0", 1); /* exact float32, as the tolerances assume */
  dx_errbuf err = {{0}};
  if (dx_backend_open("cuda", &gpu, &err) != DX_OK) {
    fprintf(stderr, "gpu_models: cannot open the CUDA backend: %s\n", err.msg);
    return 1;
  }
  fprintf(stderr, "gpu_models: %s\n", gpu->device_desc);
  int rc = dx_test_run(cases, sizeof cases / sizeof cases[0], argc, argv);
  dx_backend_close(gpu);
  return rc;
}
