/* test_hdemucs.c: the HDemucs (v3 hybrid) graph against the reference kit's
 * hdemucs_tiny case: forward/output (stored as float16: relative L2 below
 * 2e-3, and its mean/rms/probe, computed from float32, to 1e-5 of the rms),
 * and a layer-by-layer comparison of every act/ entry (mean, rms, maxabs,
 * probe over the whole tensor, plus the stored head values) through the
 * model observer, printing a table and naming the first layer that departs. */
#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dx_backend.h"
#include "dx_model.h"
#include "dx_test.h"

#define MAX_ACTS 64
#define LAYER_TOL 1e-4 /* stats of intermediate tensors, relative to the reference rms */

typedef struct {
  char name[64];
  double mean, rms, maxabs, probe;
  size_t n;
  float *head; /* first head elements */
  size_t head_n;
} act_stats;

typedef struct {
  act_stats a[MAX_ACTS];
  int n;
} act_table;

static void summarise(const float *x, size_t n, act_stats *s) {
  double sum = 0, sq = 0, mx = 0, pr = 0;
  for (size_t i = 0; i < n; i++) {
    const double v = x[i];
    sum += v, sq += v * v, pr += v * cos(0.7 * (double)i);
    if (fabs(v) > mx) mx = fabs(v);
  }
  s->mean = sum / n, s->rms = sqrt(sq / n), s->maxabs = mx, s->probe = pr / n, s->n = n;
}

static void observer(void *user, const char *name, const float *data, size_t n, const size_t *shape, int ndim) {
  (void)shape, (void)ndim;
  act_table *t = user;
  if (t->n >= MAX_ACTS) return;
  act_stats *s = &t->a[t->n++];
  snprintf(s->name, sizeof s->name, "%s", name);
  summarise(data, n, s);
  s->head_n = n < 4096 ? n : 4096;
  s->head = malloc(s->head_n * sizeof *s->head);
  if (s->head) memcpy(s->head, data, s->head_n * sizeof *s->head);
}

static const act_stats *find_act(const act_table *t, const char *name) {
  for (int i = 0; i < t->n; i++)
    if (!strcmp(t->a[i].name, name)) return &t->a[i];
  return NULL;
}

static double jnum(json_object *o, const char *k) {
  json_object *v;
  return json_object_object_get_ex(o, k, &v) ? json_object_get_double(v) : NAN;
}

DX_TEST(hdemucs_tiny_forward_and_layers) {
  json_object *man = json_object_from_file(dx_test_ref_path("demucs/hdemucs_tiny/manifest.json"));
  if (!man) SKIP("reference kit not found");
  json_object *tensors;
  CHECK(json_object_object_get_ex(man, "tensors", &tensors));
  size_t nin = 0, nref = 0;
  float *in = dx_test_read_tensor(dx_test_ref_path("demucs/hdemucs_tiny/forward_input.f16"), &nin);
  float *ref = dx_test_read_tensor(dx_test_ref_path("demucs/hdemucs_tiny/forward_output.f16"), &nref);
  CHECK(in && ref && nin == 2 * 441000 && nref == 4 * nin);
  dx_errbuf err = {{0}};
  dx_model *m = NULL;
  dx_backend *be = NULL;
  dx_status st = dx_model_load(dx_test_ref_path("demucs/hdemucs_tiny.th"), &m, &err);
  CHECK_MSG(st == DX_OK, "%s: %s", dx_strerror(st), err.msg);
  CHECK(dx_backend_open("cpu", &be, &err) == DX_OK);
  if (!in || !ref || !m || !be) goto done;
  const dx_model_info *info = dx_model_get_info(m);
  CHECK(info->klass == DX_MODEL_HDEMUCS && info->n_sources == 4 && info->audio_channels == 2);
  CHECK(info->params == 596412);
  CHECK(dx_model_valid_length(m, 441000) == 441000);

  act_table *acts = calloc(1, sizeof *acts);
  float *out = malloc(nref * sizeof *out);
  dx_model_set_observer(m, observer, acts);
  st = dx_model_forward(m, be, in, nin / 2, out, &err);
  CHECK_MSG(st == DX_OK, "%s: %s", dx_strerror(st), err.msg);
  dx_model_set_observer(m, NULL, NULL);

  if (st == DX_OK) {
    /* Layer by layer. */
    printf("  %-16s %12s %12s %12s %12s %10s %10s\n", "layer", "mean", "rms", "maxabs", "probe", "stat err",
           "head err");
    const char *first_bad = NULL;
    int n_act = 0;
    for (size_t i = 0; i < json_object_array_length(tensors); i++) {
      json_object *t = json_object_array_get_idx(tensors, i), *nm, *hf;
      json_object_object_get_ex(t, "name", &nm);
      const char *name = json_object_get_string(nm);
      if (strncmp(name, "act/", 4)) continue;
      n_act++;
      const act_stats *a = find_act(acts, name + 4);
      const double rmean = jnum(t, "mean"), rrms = jnum(t, "rms"), rmax = jnum(t, "maxabs"), rprobe = jnum(t, "probe");
      if (!a) {
        printf("  %-16s missing from the graph's observations\n", name + 4);
        if (!first_bad) first_bad = name + 4;
        continue;
      }
      double e = fabs(a->mean - rmean);
      if (fabs(a->rms - rrms) > e) e = fabs(a->rms - rrms);
      if (fabs(a->probe - rprobe) > e) e = fabs(a->probe - rprobe);
      if (fabs(a->maxabs - rmax) > e) e = fabs(a->maxabs - rmax);
      e /= rrms;
      double he = NAN;
      if (json_object_object_get_ex(t, "head_file", &hf)) {
        char rel[256];
        snprintf(rel, sizeof rel, "demucs/hdemucs_tiny/%s", json_object_get_string(hf));
        size_t hn = 0;
        float *h = dx_test_read_tensor(dx_test_ref_path(rel), &hn);
        if (h && hn == a->head_n) he = dx_test_rel_l2(a->head, h, hn);
        free(h);
      }
      const int bad = !(e < LAYER_TOL) || !(he < LAYER_TOL);
      printf("  %-16s %12.5g %12.5g %12.5g %12.4g %10.2g %10.2g%s\n", name + 4, a->mean, a->rms, a->maxabs, a->probe,
             e, he, bad ? "  <-- departs" : "");
      if (bad && !first_bad) first_bad = name + 4;
    }
    CHECK(n_act == 33);
    CHECK_MSG(first_bad == NULL, "first layer that departs from the reference: %s", first_bad);

    /* Output. */
    const double rel = dx_test_rel_l2(out, ref, nref);
    act_stats o;
    summarise(out, nref, &o);
    json_object *t = NULL;
    for (size_t i = 0; i < json_object_array_length(tensors); i++) {
      json_object *ti = json_object_array_get_idx(tensors, i), *nm;
      json_object_object_get_ex(ti, "name", &nm);
      if (!strcmp(json_object_get_string(nm), "forward/output")) t = ti;
    }
    CHECK(t != NULL);
    printf("  forward/output: rel L2 %.3g (f16 reference), mean %.9g rms %.9g probe %.4g\n", rel, o.mean, o.rms,
           o.probe);
    CHECK(rel < 2e-3);
    if (t) {
      const double rrms = jnum(t, "rms");
      CHECK_NEAR(o.mean, jnum(t, "mean"), 1e-5 * rrms);
      CHECK_NEAR(o.rms, rrms, 1e-5 * rrms);
      CHECK_NEAR(o.probe, jnum(t, "probe"), 1e-5 * rrms);
    }
    if (rel >= 2e-3) dx_test_dump("hdemucs_tiny_output", out, nref);
  }
  for (int i = 0; i < acts->n; i++) free(acts->a[i].head);
  free(acts);
  free(out);
done:
  dx_model_free(m);
  dx_backend_close(be);
  free(in);
  free(ref);
  json_object_put(man);
}

/* The loader picks the class and the sources from the file. */
DX_TEST(hdemucs_class_from_file) {
  dx_errbuf err = {{0}};
  dx_model *m = NULL;
  dx_status st = dx_model_load(dx_test_ref_path("demucs/hdemucs_tiny.th"), &m, &err);
  if (st == DX_ERR_IO) SKIP("reference kit not found");
  CHECK(st == DX_OK);
  if (m) CHECK(dx_model_get_info(m)->klass == DX_MODEL_HDEMUCS);
  if (m) CHECK(!strcmp(dx_model_get_info(m)->sources[3], "vocals"));
  dx_model_free(m);
}

DX_TEST_MAIN(DX_T(hdemucs_tiny_forward_and_layers), DX_T(hdemucs_class_from_file))
