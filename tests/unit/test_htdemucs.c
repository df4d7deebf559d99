/* test_htdemucs.c: the HTDemucs graph against the reference kit.
 * - forward/output of htdemucs_tiny and htdemucs_6s_tiny within 1e-4
 *   relative L2 error of the official implementation;
 * - layer by layer (htdemucs_tiny act/ entries): mean, rms, maxabs and probe
 *   of every submodule output seen through the model observer, and the
 *   stored head values, in a table naming the first layer that departs;
 * - a short input is zero-padded to the training length and cropped back
 *   (the output for the first samples matches a run on a longer input).
 * On failure the arrays are written with dx_test_dump. */
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "dx_backend.h"
#include "dx_model.h"
#include "dx_test.h"

typedef struct {
  char name[64];
  double mean, rms, maxabs, probe;
  size_t n, shape[4];
  int ndim;
  float head[4096];
  size_t head_n;
} act_stats;

typedef struct {
  act_stats a[64];
  int n;
} act_table;

static void stats_of(const float *x, size_t n, double *mean, double *rms, double *maxabs, double *probe) {
  double s = 0, ss = 0, mx = 0, pr = 0;
  for (size_t i = 0; i < n; i++) {
    double v = x[i];
    s += v;
    ss += v * v;
    if (fabs(v) > mx) mx = fabs(v);
    pr += v * cos(0.7 * (double)i);
  }
  *mean = s / n;
  *rms = sqrt(ss / n);
  *maxabs = mx;
  *probe = pr / n;
}

static void observer(void *user, const char *name, const float *data, size_t n, const size_t *shape, int ndim) {
  act_table *t = user;
  if (t->n >= 64) return;
  act_stats *a = &t->a[t->n++];
  snprintf(a->name, sizeof a->name, "%s", name);
  stats_of(data, n, &a->mean, &a->rms, &a->maxabs, &a->probe);
  a->n = n;
  a->ndim = ndim;
  for (int d = 0; d < ndim && d < 4; d++) a->shape[d] = shape[d];
  a->head_n = n < 4096 ? n : 4096;
  memcpy(a->head, data, a->head_n * sizeof(float));
}

static json_object *manifest(const char *cas) {
  char rel[256];
  snprintf(rel, sizeof rel, "demucs/%s/manifest.json", cas);
  return json_object_from_file(dx_test_ref_path(rel));
}

static json_object *entry(json_object *man, const char *name) {
  json_object *ts;
  if (!json_object_object_get_ex(man, "tensors", &ts)) return NULL;
  for (size_t i = 0; i < json_object_array_length(ts); i++) {
    json_object *e = json_object_array_get_idx(ts, i), *nm;
    if (json_object_object_get_ex(e, "name", &nm) && !strcmp(json_object_get_string(nm), name)) return e;
  }
  return NULL;
}

static double jnum(json_object *e, const char *k) {
  json_object *v;
  return json_object_object_get_ex(e, k, &v) ? json_object_get_double(v) : NAN;
}

static float *read_entry(const char *cas, json_object *e, const char *key, size_t *n) {
  json_object *f;
  if (!e || !json_object_object_get_ex(e, key, &f)) return NULL;
  char rel[256];
  snprintf(rel, sizeof rel, "demucs/%s/%s", cas, json_object_get_string(f));
  return dx_test_read_tensor(dx_test_ref_path(rel), n);
}

/* Run one case's forward; returns the relative L2 error (or -1). */
static double run_forward(const char *cas, act_table *acts) {
  json_object *man = manifest(cas);
  if (!man) { CHECK_MSG(0, "no manifest for %s", cas); return -1; }
  json_object *ein = entry(man, "forward/input"), *eout = entry(man, "forward/output"), *shp;
  size_t nin = 0, nout = 0;
  float *in = read_entry(cas, ein, "file", &nin), *ref = read_entry(cas, eout, "file", &nout);
  double rel = -1;
  char rel_path[256];
  snprintf(rel_path, sizeof rel_path, "demucs/%s.th", cas);
  dx_model *m = NULL;
  dx_backend *be = NULL;
  dx_errbuf err = {{0}};
  if (!in || !ref || !json_object_object_get_ex(ein, "shape", &shp)) { CHECK_MSG(0, "cannot read %s tensors", cas); goto out; }
  size_t length = (size_t)json_object_get_int64(json_object_array_get_idx(shp, 1));
  dx_status st = dx_model_load(dx_test_ref_path(rel_path), &m, &err);
  CHECK_MSG(st == DX_OK, "%s: %s", cas, err.msg);
  if (st) goto out;
  st = dx_backend_open("cpu", &be, &err);
  CHECK(st == DX_OK);
  if (st) goto out;
  const dx_model_info *info = dx_model_get_info(m);
  CHECK(nout == (size_t)info->n_sources * info->audio_channels * length);
  if (acts) dx_model_set_observer(m, observer, acts);
  float *out = malloc(nout * sizeof *out);
  st = dx_model_forward(m, be, in, length, out, &err);
  CHECK_MSG(st == DX_OK, "forward %s: %s (%s)", cas, dx_strerror(st), err.msg);
  if (!st) {
    rel = dx_test_rel_l2(out, ref, nout);
    fprintf(stderr, "  %s forward/output relative L2 error %.3g\n", cas, rel);
    if (!(rel < 1e-4)) {
      char nm[128];
      snprintf(nm, sizeof nm, "%s_forward_output", cas);
      dx_test_dump(nm, out, nout);
    }
  }
  free(out);
out:
  dx_backend_close(be);
  dx_model_free(m);
  free(in);
  free(ref);
  json_object_put(man);
  return rel;
}

DX_TEST(htdemucs_tiny_forward_and_layers) {
  static act_table acts;
  memset(&acts, 0, sizeof acts);
  double rel = run_forward("htdemucs_tiny", &acts);
  CHECK_MSG(rel >= 0 && rel < 1e-4, "relative L2 error %g", rel);

  json_object *man = manifest("htdemucs_tiny"), *ts;
  if (!man || !json_object_object_get_ex(man, "tensors", &ts)) { CHECK(0); return; }
  const char *first_bad = NULL;
  int checked = 0;
  fprintf(stderr, "  %-22s %12s %12s %12s %12s %10s  %s\n", "layer", "d(mean)/rms", "d(rms)/rms", "d(max)/max",
          "d(probe)/rms", "head err", "");
  for (size_t i = 0; i < json_object_array_length(ts); i++) {
    json_object *e = json_object_array_get_idx(ts, i), *nm;
    json_object_object_get_ex(e, "name", &nm);
    const char *name = json_object_get_string(nm);
    if (strncmp(name, "act/", 4)) continue;
    const act_stats *a = NULL;
    for (int k = 0; k < acts.n; k++)
      if (!strcmp(acts.a[k].name, name + 4)) a = &acts.a[k];
    if (!a) {
      fprintf(stderr, "  %-22s not observed\n", name + 4);
      if (!first_bad) first_bad = name + 4;
      continue;
    }
    checked++;
    double rrms = jnum(e, "rms"), dm = fabs(a->mean - jnum(e, "mean")) / rrms, dr = fabs(a->rms - rrms) / rrms,
           dx = fabs(a->maxabs - jnum(e, "maxabs")) / jnum(e, "maxabs"), dp = fabs(a->probe - jnum(e, "probe")) / rrms;
    size_t hn = 0;
    float *head = read_entry("htdemucs_tiny", e, "head_file", &hn);
    double herr = head && hn <= a->head_n ? dx_test_rel_l2(a->head, head, hn) : 1.0;
    /* shape */
    json_object *shp;
    int shape_ok = json_object_object_get_ex(e, "shape", &shp) && (int)json_object_array_length(shp) == a->ndim;
    for (int d = 0; shape_ok && d < a->ndim; d++)
      shape_ok = (size_t)json_object_get_int64(json_object_array_get_idx(shp, (size_t)d)) == a->shape[d];
    int ok = shape_ok && dm < 1e-4 && dr < 1e-4 && dx < 1e-3 && dp < 1e-4 && herr < 1e-4;
    fprintf(stderr, "  %-22s %12.2e %12.2e %12.2e %12.2e %10.2e  %s%s\n", name + 4, dm, dr, dx, dp, herr,
            ok ? "ok" : "DEPARTS", shape_ok ? "" : " (shape)");
    if (!ok && !first_bad) {
      first_bad = name + 4;
      dx_test_dump("htdemucs_tiny_first_departing_head", a->head, a->head_n);
    }
    free(head);
  }
  CHECK_MSG(first_bad == NULL, "first layer that departs from the reference: %s", first_bad);
  CHECK(checked == 26);
  json_object_put(man);
}

DX_TEST(htdemucs_6s_tiny_forward) {
  double rel = run_forward("htdemucs_6s_tiny", NULL);
  CHECK_MSG(rel >= 0 && rel < 1e-4, "relative L2 error %g", rel);
}

/* htdemucs_tiny from the kit and a CPU backend; on failure says why. */
static int open_tiny_on_cpu(dx_model **m, dx_backend **be, dx_errbuf *err) {
  if (dx_model_load(dx_test_ref_path("demucs/htdemucs_tiny.th"), m, err) || dx_backend_open("cpu", be, err)) {
    CHECK_MSG(0, "%s", err->msg);
    dx_model_free(*m);
    *m = NULL;
    return 0;
  }
  return 1;
}

/* A short chunk runs zero-padded to the training length: its output equals
 * the first samples of a run on the same chunk followed by zeros. */
DX_TEST(short_input_is_padded) {
  dx_model *m = NULL;
  dx_backend *be = NULL;
  dx_errbuf err = {{0}};
  if (!open_tiny_on_cpu(&m, &be, &err)) return;
  size_t n1 = 20000, n2 = 30000;
  float *in = calloc(2 * n2, sizeof *in), *in1 = malloc(2 * n1 * sizeof *in1);
  for (size_t c = 0; c < 2; c++)
    for (size_t i = 0; i < n1; i++) in[c * n2 + i] = in1[c * n1 + i] = (float)(0.3 * sin(0.01 * i * (c + 1)));
  float *o1 = malloc(8 * n1 * sizeof *o1), *o2 = malloc(8 * n2 * sizeof *o2);
  CHECK(dx_model_forward(m, be, in1, n1, o1, &err) == DX_OK);
  CHECK(dx_model_forward(m, be, in, n2, o2, &err) == DX_OK);
  double num = 0, den = 0;
  for (size_t r = 0; r < 8; r++)
    for (size_t i = 0; i < n1; i++) {
      double d = o1[r * n1 + i] - o2[r * n2 + i];
      num += d * d;
      den += (double)o2[r * n2 + i] * o2[r * n2 + i];
    }
  CHECK_MSG(sqrt(num / den) < 1e-5, "padded runs differ: %g", sqrt(num / den));
  /* longer than the training length is refused */
  float *big = calloc(2 * 343981, sizeof *big), *bo = malloc(8 * 343981 * sizeof *bo);
  CHECK(dx_model_forward(m, be, big, 343981, bo, &err) == DX_ERR_INVALID);
  free(big);
  free(bo);
  free(in);
  free(in1);
  free(o1);
  free(o2);
  dx_backend_close(be);
  dx_model_free(m);
}

/* DEMIX_PROFILE's op timing leaves the output bit-identical, counts each
 * forward once, and reports the ops the graph calls, their shares within
 * the forward's time. */
DX_TEST(profile_times_ops_without_changing_output) {
  dx_model *m = NULL;
  dx_backend *be = NULL;
  dx_errbuf err = {{0}};
  if (!open_tiny_on_cpu(&m, &be, &err)) return;
  size_t n = 30000;
  float *in = malloc(2 * n * sizeof *in), *o1 = malloc(8 * n * sizeof *o1), *o2 = malloc(8 * n * sizeof *o2);
  for (size_t i = 0; i < 2 * n; i++) in[i] = (float)(0.3 * sin(0.013 * (double)i) + 0.1 * cos(0.0007 * (double)i * i));
  int was = dx_model_profile_enabled();
  dx_model_profile_set(0);
  dx_model_profile_reset();
  CHECK(dx_model_forward(m, be, in, n, o1, &err) == DX_OK);
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  dx_model_profile_report(f);
  fclose(f);
  CHECK_MSG(len == 0, "a profile without profiled forwards: %s", text);
  free(text);
  dx_model_profile_set(1);
  CHECK(dx_model_forward(m, be, in, n, o2, &err) == DX_OK);
  CHECK(dx_model_forward(m, be, in, n, o2, &err) == DX_OK);
  dx_model_profile_set(was);
  CHECK_MSG(!memcmp(o1, o2, 8 * n * sizeof *o1), "profiling changed the output");
  f = open_memstream(&text, &len);
  dx_model_profile_report(f);
  fclose(f);
  CHECK_MSG(text && strstr(text, "conv1d") && strstr(text, "attention") && strstr(text, "upload"), "%s", text);
  /* the forward line: 2 calls; every op's share within it */
  const char *fw = text ? strstr(text, "forward (all)") : NULL;
  long calls = 0;
  CHECK_MSG(fw && sscanf(fw + strlen("forward (all)"), "%ld", &calls) == 1 && calls == 2, "%s", text);
  for (const char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
    char name[32];
    long c;
    double secs, share;
    if (sscanf(line, " %31s %ld %lf %lf%%", name, &c, &secs, &share) == 4)
      CHECK_MSG(c > 0 && secs >= 0 && share >= 0 && share <= 100.0, "line: %.80s", line);
  }
  free(text);
  dx_model_profile_reset();
  free(in);
  free(o1);
  free(o2);
  dx_backend_close(be);
  dx_model_free(m);
}

DX_TEST_MAIN(DX_T(htdemucs_tiny_forward_and_layers), DX_T(htdemucs_6s_tiny_forward), DX_T(short_input_is_padded),
             DX_T(profile_times_ops_without_changing_output))
