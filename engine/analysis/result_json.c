/* result_json.c: feature-group names and the JSON form of an analysis.
 *
 * The result object keeps seed 002's fields where it has them (numbers at
 * the top level: tempo, key, energy, spectral_centroid, spectral_rolloff,
 * zero_crossing_rate; features.mfcc and features.chroma as arrays of rows)
 * and adds the rest:
 *   duration, sample_rate, channels, analysis_sample_rate, frames, feature_groups
 *   tempo: tempo, tempo_confidence, beats (s), beat_count, onset_rate (onsets/s)
 *   key: key ("A minor"), key_confidence, camelot ("8A")
 *   energy: energy (0..1), rms {mean, std}
 *   loudness: loudness {integrated_lufs, loudness_range, true_peak_dbtp}
 *   spectral: spectral_centroid, spectral_bandwidth, spectral_rolloff,
 *     spectral_flatness, zero_crossing_rate (means) and spectral {centroid,
 *     bandwidth, rolloff, flatness, zero_crossing_rate: {mean, std},
 *     contrast: {mean: [7], std: [7]}}
 *   mfcc: mfcc {mean: [20], std: [20]}, features.mfcc = [mean, std]
 *   chroma: chroma {mean: [12] from C}, features.chroma = [mean]
 * Values that do not exist (the loudness of near silence) are null.
 * Thread-safe. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "dx_analysis.h"

static const char *const group_names[] = {"tempo", "key", "energy", "spectral", "mfcc", "chroma", "loudness"};
#define N_GROUPS (sizeof group_names / sizeof group_names[0])

const char *dx_analysis_feature_name(unsigned bit) {
  for (unsigned i = 0; i < N_GROUPS; i++)
    if (bit == 1u << i) return group_names[i];
  return NULL;
}

dx_status dx_analysis_feature_add(const char *name, unsigned *mask, dx_errbuf *err) {
  if (name && !strcmp(name, "all")) {
    *mask |= DX_AF_ALL;
    return DX_OK;
  }
  for (unsigned i = 0; name && i < N_GROUPS; i++)
    if (!strcmp(name, group_names[i])) {
      *mask |= 1u << i;
      return DX_OK;
    }
  return dx_fail(err, DX_ERR_INVALID,
                 "unknown feature '%s' (tempo, key, energy, spectral, mfcc, chroma, loudness or all)",
                 name ? name : "");
}

dx_status dx_analysis_features_parse(const char *list, unsigned *mask, dx_errbuf *err) {
  *mask = 0;
  char buf[256];
  if (!list || strlen(list) >= sizeof buf) return dx_fail(err, DX_ERR_INVALID, "bad feature list");
  snprintf(buf, sizeof buf, "%s", list);
  char *save = NULL;
  for (char *t = strtok_r(buf, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
    dx_status st = dx_analysis_feature_add(t, mask, err);
    if (st != DX_OK) return st;
  }
  if (!*mask) return dx_fail(err, DX_ERR_INVALID, "no features named");
  return DX_OK;
}

/* Round to a sensible number of significant digits for storage. */
static json_object *num(double v) {
  if (!isfinite(v)) return NULL;
  char buf[32];
  snprintf(buf, sizeof buf, "%.7g", v);
  return json_object_new_double_s(strtod(buf, NULL), buf);
}

static json_object *stat_obj(dx_stat s) {
  json_object *o = json_object_new_object();
  json_object_object_add(o, "mean", num(s.mean));
  json_object_object_add(o, "std", num(s.std));
  return o;
}

static json_object *num_array(const double *v, int n) {
  json_object *a = json_object_new_array_ext(n);
  for (int i = 0; i < n; i++) json_object_array_add(a, num(v[i]));
  return a;
}

json_object *dx_analysis_result_json(const dx_analysis_result *r) {
  json_object *o = json_object_new_object();
  unsigned f = r->features;
  json_object_object_add(o, "duration", num(r->duration));
  json_object_object_add(o, "sample_rate", json_object_new_int(r->sample_rate));
  json_object_object_add(o, "channels", json_object_new_int(r->channels));
  json_object *groups = json_object_new_array();
  for (unsigned i = 0; i < N_GROUPS; i++)
    if (f & (1u << i)) json_object_array_add(groups, json_object_new_string(group_names[i]));
  json_object_object_add(o, "feature_groups", groups);
  if (f & ~DX_AF_LOUDNESS) {
    json_object_object_add(o, "analysis_sample_rate", json_object_new_int(r->analysis_rate));
    json_object_object_add(o, "frames", json_object_new_int64((int64_t)r->frames));
  }
  if (f & DX_AF_TEMPO) {
    json_object_object_add(o, "tempo", num(r->tempo));
    json_object_object_add(o, "tempo_confidence", num(r->tempo_confidence));
    json_object *b = json_object_new_array_ext((int)r->n_beats);
    for (size_t i = 0; i < r->n_beats; i++) {
      char buf[32];
      snprintf(buf, sizeof buf, "%.3f", r->beats[i]);
      json_object_array_add(b, json_object_new_double_s(r->beats[i], buf));
    }
    json_object_object_add(o, "beats", b);
    json_object_object_add(o, "beat_count", json_object_new_int64((int64_t)r->n_beats));
    json_object_object_add(o, "onset_rate", num(r->onset_rate));
    json_object_object_add(o, "danceability", num(r->danceability));
  }
  if (f & DX_AF_KEY) {
    json_object_object_add(o, "key", r->key_index >= 0 ? json_object_new_string(r->key) : NULL);
    json_object_object_add(o, "key_confidence", num(r->key_confidence));
    json_object_object_add(o, "camelot", r->key_index >= 0 ? json_object_new_string(r->camelot) : NULL);
  }
  if (f & DX_AF_ENERGY) {
    json_object_object_add(o, "energy", num(r->energy));
    json_object_object_add(o, "rms", stat_obj(r->rms));
  }
  if (f & DX_AF_LOUDNESS) {
    json_object *l = json_object_new_object();
    json_object_object_add(l, "integrated_lufs", num(r->lufs));
    json_object_object_add(l, "loudness_range", num(r->lra));
    json_object_object_add(l, "true_peak_dbtp", num(r->true_peak_db));
    json_object_object_add(o, "loudness", l);
  }
  if (f & DX_AF_SPECTRAL) {
    json_object_object_add(o, "spectral_centroid", num(r->centroid.mean));
    json_object_object_add(o, "spectral_bandwidth", num(r->bandwidth.mean));
    json_object_object_add(o, "spectral_rolloff", num(r->rolloff.mean));
    json_object_object_add(o, "spectral_flatness", num(r->flatness.mean));
    json_object_object_add(o, "zero_crossing_rate", num(r->zcr.mean));
    json_object *s = json_object_new_object();
    json_object_object_add(s, "centroid", stat_obj(r->centroid));
    json_object_object_add(s, "bandwidth", stat_obj(r->bandwidth));
    json_object_object_add(s, "rolloff", stat_obj(r->rolloff));
    json_object_object_add(s, "flatness", stat_obj(r->flatness));
    json_object_object_add(s, "zero_crossing_rate", stat_obj(r->zcr));
    double cm[DX_CONTRAST_N], cs[DX_CONTRAST_N];
    for (int i = 0; i < DX_CONTRAST_N; i++) {
      cm[i] = r->contrast[i].mean;
      cs[i] = r->contrast[i].std;
    }
    json_object *c = json_object_new_object();
    json_object_object_add(c, "mean", num_array(cm, DX_CONTRAST_N));
    json_object_object_add(c, "std", num_array(cs, DX_CONTRAST_N));
    json_object_object_add(s, "contrast", c);
    json_object_object_add(o, "spectral", s);
  }
  json_object *feats = NULL;
  if (f & (DX_AF_MFCC | DX_AF_CHROMA)) feats = json_object_new_object();
  if (f & DX_AF_MFCC) {
    double m[DX_MAX_MFCC], s[DX_MAX_MFCC];
    for (int i = 0; i < r->n_mfcc; i++) {
      m[i] = r->mfcc[i].mean;
      s[i] = r->mfcc[i].std;
    }
    json_object *mo = json_object_new_object();
    json_object_object_add(mo, "mean", num_array(m, r->n_mfcc));
    json_object_object_add(mo, "std", num_array(s, r->n_mfcc));
    json_object_object_add(o, "mfcc", mo);
    json_object *rows = json_object_new_array();
    json_object_array_add(rows, num_array(m, r->n_mfcc));
    json_object_array_add(rows, num_array(s, r->n_mfcc));
    json_object_object_add(feats, "mfcc", rows);
  }
  if (f & DX_AF_CHROMA) {
    json_object *co = json_object_new_object();
    json_object_object_add(co, "mean", num_array(r->chroma, 12));
    json_object_object_add(o, "chroma", co);
    json_object *rows = json_object_new_array();
    json_object_array_add(rows, num_array(r->chroma, 12));
    json_object_object_add(feats, "chroma", rows);
  }
  if (feats) json_object_object_add(o, "features", feats);
  return o;
}
