/* test_separate_kit.c: whole-track separation (engine/models/separate.c over
 * apply.c and the graphs) against the reference kit's separate/ cases:
 * htdemucs_tiny, hdemucs_tiny, demucs_tiny and bag_tiny (bag_part_a +
 * bag_part_b with the weights of bag_tiny/manifest.json), shifts 0, overlap
 * 0.25, within 2e-3 relative L2 (outputs are stored as float16). Also: two
 * stems, the hpss model, writing stems, input conversion, the model cache. */
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dx_apply.h"
#include "dx_backend.h"
#include "dx_model.h"
#include "dx_separate.h"
#include "dx_test.h"
#include "dx_util.h"

static dx_backend *cpu(void) {
  static dx_backend *be;
  if (!be) dx_backend_open("cpu", &be, NULL);
  return be;
}

static float *read_ref(const char *rel, size_t *n) { return dx_test_read_tensor(dx_test_ref_path(rel), n); }

/* A model folder holding links to the kit's checkpoints. */
static const char *kit_repo(void) {
  static char dir[64];
  if (dir[0]) return dir;
  snprintf(dir, sizeof dir, "/tmp/dx_sepkit_XXXXXX");
  if (!mkdtemp(dir)) return NULL;
  const char *names[] = {"htdemucs_tiny", "hdemucs_tiny", "demucs_tiny", "bag_part_a", "bag_part_b"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    char src[512], dst[128], rel[64];
    snprintf(rel, sizeof rel, "demucs/%s.th", names[i]);
    snprintf(src, sizeof src, "%s", dx_test_ref_path(rel));
    if (src[0] != '/') {
      char cwd[400];
      if (getcwd(cwd, sizeof cwd)) snprintf(src, sizeof src, "%s/%s", cwd, dx_test_ref_path(rel));
    }
    snprintf(dst, sizeof dst, "%s/%s.th", dir, names[i]);
    if (i == 2) { /* a copy: the cache test changes its mtime */
      char *data = NULL;
      size_t n = 0;
      if (dx_read_file(src, &data, &n) != DX_OK || dx_write_file_atomic(dst, data, n) != DX_OK) return NULL;
      free(data);
    } else if (symlink(src, dst) != 0) {
      return NULL;
    }
  }
  return dir;
}

static void check_case(const char *name) {
  char rel_in[128], rel_out[128];
  snprintf(rel_in, sizeof rel_in, "demucs/%s/separate_input.f16", name);
  snprintf(rel_out, sizeof rel_out, "demucs/%s/separate_output.f16", name);
  size_t ni = 0, no = 0;
  float *in = read_ref(rel_in, &ni), *ref = read_ref(rel_out, &no);
  CHECK_MSG(in && ref, "%s: reference files missing", name);
  if (!in || !ref) return;
  dx_separator *sep = NULL;
  dx_errbuf err = {{0}};
  dx_status st = dx_separator_load(kit_repo(), name, &sep, &err);
  CHECK_MSG(st == DX_OK, "%s: %s", name, err.msg);
  if (st != DX_OK) return;
  dx_audio a = {in, 2, 44100, ni / 2};
  dx_separate_params p = dx_separate_default_params();
  p.shifts = 0;
  dx_stems stems = {0};
  dx_backend *bes[1] = {cpu()};
  st = dx_separator_run(sep, bes, &a, &p, &stems, &err);
  CHECK_MSG(st == DX_OK, "%s: %s", name, err.msg);
  if (st == DX_OK) {
    CHECK(stems.n == 4 && stems.frames == ni / 2 && (size_t)stems.n * 2 * stems.frames == no);
    double e = dx_test_rel_l2(stems.data, ref, no);
    fprintf(stderr, "  %s: rel L2 %.3g\n", name, e);
    CHECK_MSG(e < 2e-3, "%s: rel L2 %.3g", name, e);
    if (e >= 2e-3) dx_test_dump(name, stems.data, no);
  }
  dx_stems_free(&stems);
  dx_separator_free(sep);
  free(in);
  free(ref);
}

DX_TEST(htdemucs_tiny_matches_kit) { check_case("htdemucs_tiny"); }
DX_TEST(hdemucs_tiny_matches_kit) { check_case("hdemucs_tiny"); }
DX_TEST(demucs_tiny_matches_kit) { check_case("demucs_tiny"); }

typedef struct {
  dx_model *m;
  dx_backend *be;
} fwd_user;
static size_t fwd_valid(void *u, size_t n) { return dx_model_valid_length(((fwd_user *)u)->m, n); }
static dx_status fwd_run(void *u, int w, const float *in, size_t n, float *out, dx_errbuf *err) {
  (void)w;
  return dx_model_forward(((fwd_user *)u)->m, ((fwd_user *)u)->be, in, n, out, err);
}

DX_TEST(bag_tiny_matches_kit) {
  /* the bag's weights come from its manifest */
  char *js = NULL;
  size_t jn = 0;
  CHECK(dx_read_file(dx_test_ref_path("demucs/bag_tiny/manifest.json"), &js, &jn) == DX_OK);
  if (!js) return;
  json_object *man = json_tokener_parse(js), *models, *weights;
  free(js);
  CHECK(json_object_object_get_ex(man, "models", &models) && json_object_object_get_ex(man, "weights", &weights));
  int nm = (int)json_object_array_length(models);
  CHECK(nm == 2);
  float w[2 * 4];
  dx_model *ms[2] = {0};
  dx_apply_model am[2];
  fwd_user users[2];
  for (int m = 0; m < nm && m < 2; m++) {
    json_object *row = json_object_array_get_idx(weights, (size_t)m);
    for (int k = 0; k < 4; k++) w[m * 4 + k] = (float)json_object_get_double(json_object_array_get_idx(row, (size_t)k));
    char rel[128];
    snprintf(rel, sizeof rel, "demucs/%s", json_object_get_string(json_object_array_get_idx(models, (size_t)m)));
    dx_errbuf err = {{0}};
    CHECK_MSG(dx_model_load(dx_test_ref_path(rel), &ms[m], &err) == DX_OK, "%s", err.msg);
    if (!ms[m]) return;
    const dx_model_info *in = dx_model_get_info(ms[m]);
    users[m] = (fwd_user){ms[m], cpu()};
    am[m] = (dx_apply_model){in->n_sources, in->audio_channels, in->samplerate, in->segment,
                             in->klass == DX_MODEL_HTDEMUCS, fwd_valid, fwd_run, &users[m]};
  }
  json_object_put(man);
  size_t ni = 0, no = 0;
  float *in = read_ref("demucs/bag_tiny/separate_input.f16", &ni), *ref = read_ref("demucs/bag_tiny/separate_output.f16", &no);
  float *out = malloc(no * sizeof *out);
  dx_apply_params p = dx_apply_default_params();
  p.shifts = 0;
  dx_errbuf err = {{0}};
  dx_status st = dx_apply_run(am, 2, w, in, ni / 2, &p, out, &err);
  CHECK_MSG(st == DX_OK, "%s", err.msg);
  double e = dx_test_rel_l2(out, ref, no);
  fprintf(stderr, "  bag_tiny: rel L2 %.3g\n", e);
  CHECK_MSG(e < 2e-3, "bag_tiny: rel L2 %.3g", e);
  for (int m = 0; m < 2; m++) dx_model_free(ms[m]);
  free(in);
  free(ref);
  free(out);
}

DX_TEST(two_stems_and_conversion) {
  size_t ni = 0, no = 0;
  float *in = read_ref("demucs/hdemucs_tiny/separate_input.f16", &ni);
  float *ref = read_ref("demucs/hdemucs_tiny/separate_output.f16", &no);
  if (!in || !ref) SKIP("kit missing");
  size_t L = ni / 2;
  dx_separator *sep = NULL;
  dx_errbuf err = {{0}};
  CHECK(dx_separator_load(kit_repo(), "hdemucs_tiny", &sep, &err) == DX_OK);
  if (!sep) return;
  dx_audio a = {in, 2, 44100, L};
  dx_separate_params p = dx_separate_default_params();
  p.shifts = 0;
  p.two_stems = "vocals";
  dx_stems st = {0};
  dx_backend *bes[1] = {cpu()};
  CHECK(dx_separator_run(sep, bes, &a, &p, &st, &err) == DX_OK);
  CHECK(st.n == 2 && !strcmp(st.names[0], "vocals") && !strcmp(st.names[1], "no_vocals"));
  /* vocals is source 3; no_vocals = mix - vocals */
  double e = dx_test_rel_l2(st.data, ref + 3 * 2 * L, 2 * L);
  CHECK_MSG(e < 2e-3, "vocals rel L2 %.3g", e);
  float *minus = malloc(2 * L * sizeof *minus);
  for (size_t i = 0; i < 2 * L; i++) minus[i] = in[i] - ref[3 * 2 * L + i];
  e = dx_test_rel_l2(st.data + 2 * L, minus, 2 * L);
  CHECK_MSG(e < 2e-3, "no_vocals rel L2 %.3g", e);
  dx_stems_free(&st);
  /* "add": the sum of the other sources */
  p.other_add = 1;
  p.two_stems = "bass";
  CHECK(dx_separator_run(sep, bes, &a, &p, &st, &err) == DX_OK);
  for (size_t i = 0; i < 2 * L; i++) minus[i] = ref[0 * 2 * L + i] + ref[2 * 2 * L + i] + ref[3 * 2 * L + i];
  e = dx_test_rel_l2(st.data + 2 * L, minus, 2 * L);
  CHECK_MSG(e < 2e-3, "no_bass (add) rel L2 %.3g", e);
  CHECK(dx_test_rel_l2(st.data, ref + 1 * 2 * L, 2 * L) < 2e-3);
  dx_stems_free(&st);
  p.two_stems = "kazoo";
  CHECK(dx_separator_run(sep, bes, &a, &p, &st, &err) == DX_ERR_INVALID);
  CHECK(strstr(err.msg, "drums, bass, other, vocals") != NULL);
  /* a mono 22.05 kHz input is converted (resampled, duplicated) first */
  p.two_stems = NULL;
  size_t Lm = L / 2;
  float *mono = malloc(Lm * sizeof *mono);
  for (size_t i = 0; i < Lm; i++) mono[i] = in[2 * i];
  dx_audio am = {mono, 1, 22050, Lm};
  CHECK(dx_separator_run(sep, bes, &am, &p, &st, &err) == DX_OK);
  CHECK(st.channels == 2 && st.samplerate == 44100 && st.frames == 2 * Lm);
  /* stems are written as files, one per source */
  char dir[64];
  snprintf(dir, sizeof dir, "/tmp/dx_sepw_XXXXXX");
  CHECK(mkdtemp(dir) != NULL);
  char paths[DX_STEMS_MAX][1024];
  CHECK(dx_stems_write(&st, dir, DX_ENC_WAV_PCM16, paths, &err) == DX_OK);
  dx_audio back = {0};
  CHECK(dx_audio_load(paths[3], 0, &back, &err) == DX_OK);
  CHECK(back.channels == 2 && back.frames == st.frames && back.samplerate == 44100);
  CHECK(strstr(paths[3], "/vocals.wav") != NULL);
  dx_audio_free(&back);
  dx_rmtree(dir);
  dx_stems_free(&st);
  free(mono);
  free(minus);
  dx_separator_free(sep);
  free(in);
  free(ref);
}

DX_TEST(hpss_model_and_errors) {
  dx_separator *sep = NULL;
  dx_errbuf err = {{0}};
  CHECK(dx_separator_load(kit_repo(), "hpss", &sep, &err) == DX_OK);
  if (!sep) return;
  CHECK(dx_separator_n_sources(sep) == 2 && !strcmp(dx_separator_source(sep, 1), "percussive"));
  size_t L = 44100;
  float *x = malloc(2 * L * sizeof *x);
  for (size_t i = 0; i < 2 * L; i++) x[i] = (float)(0.3 * sin(0.05 * i) + (i % 5000 == 0 ? 0.5 : 0));
  dx_audio a = {x, 2, 44100, L};
  dx_separate_params p = dx_separate_default_params();
  dx_stems st = {0};
  CHECK(dx_separator_run(sep, NULL, &a, &p, &st, &err) == DX_OK);
  double worst = 0;
  for (size_t i = 0; i < 2 * L; i++) worst = fmax(worst, fabs((double)st.data[i] + st.data[2 * L + i] - x[i]));
  CHECK_MSG(worst < 1e-6, "hpss sum error %.3g", worst);
  dx_stems_free(&st);
  dx_separator_free(sep);
  free(x);
  /* not installed, unknown, corrupt */
  CHECK(dx_separator_load(kit_repo(), "htdemucs", &sep, &err) == DX_ERR_MODEL_NOT_INSTALLED);
  CHECK(strstr(err.msg, "demix models fetch htdemucs") != NULL);
  CHECK(dx_separator_load(kit_repo(), "nosuch", &sep, &err) == DX_ERR_NOT_FOUND);
  char bad[128];
  snprintf(bad, sizeof bad, "%s/broken.th", kit_repo());
  static const char garbage[] = "PK\003\004garbage"; /* a zip signature and nothing a zip needs */
  CHECK(dx_write_file_atomic(bad, garbage, sizeof garbage - 1) == DX_OK);
  dx_status s = dx_separator_load(kit_repo(), "broken", &sep, &err);
  CHECK(s != DX_OK && sep == NULL);
  CHECK(strstr(err.msg, "broken.th") != NULL);
  unlink(bad);
}

DX_TEST(cache_reuses_and_reloads) {
  dx_separator *a = NULL, *b = NULL, *c = NULL;
  dx_errbuf err = {{0}};
  CHECK(dx_separator_acquire(kit_repo(), "demucs_tiny", &a, &err) == DX_OK);
  CHECK(dx_separator_acquire(kit_repo(), "demucs_tiny", &b, &err) == DX_OK);
  CHECK(a && a == b);
  dx_separator_release(a);
  dx_separator_release(b);
  /* a replaced file (new mtime) loads again */
  char path[128];
  snprintf(path, sizeof path, "%s/demucs_tiny.th", kit_repo());
  struct timespec ts[2] = {{0, UTIME_OMIT}, {1000000000, 0}};
  CHECK(utimensat(AT_FDCWD, path, ts, 0) == 0);
  CHECK(dx_separator_acquire(kit_repo(), "demucs_tiny", &c, &err) == DX_OK);
  CHECK(c && c != a);
  dx_separator_release(c);
  dx_separator_cache_clear();
}

static void cleanup(void) {
  if (kit_repo()) dx_rmtree(kit_repo());
}

DX_TEST(zz_cleanup) { cleanup(); }

DX_TEST_MAIN(DX_T(htdemucs_tiny_matches_kit), DX_T(hdemucs_tiny_matches_kit), DX_T(demucs_tiny_matches_kit),
             DX_T(bag_tiny_matches_kit), DX_T(two_stems_and_conversion), DX_T(hpss_model_and_errors),
             DX_T(cache_reuses_and_reloads), DX_T(zz_cleanup))
