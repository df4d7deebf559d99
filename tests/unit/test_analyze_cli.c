/* test_analyze_cli.c: the `demix analyze` command end to end, as a batch
 * operator runs it over a library:
 *   demix analyze --json --features tempo,key LIB
 * where LIB holds tracks at the top and in nested folders (a 120 BPM mix in
 * A minor, drums at 96 BPM, a chord progression in E major), a damaged
 * file, a hidden folder, a text file and a link back up the tree: one JSON
 * array, in path order, of every audio file (hidden ones and the link
 * left out), each with the groups asked for only, the damaged one as
 * {"file", "error": {"code", "message"}} and the exit status 1; -j 2 gives
 * the same results; --jsonl and --csv (cells quoted where needed) give the
 * same files and answers; one file gives one object, and the readable output
 * names it; an empty folder, no argument and an unknown feature are usage
 * errors (2). */
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dx_audio.h"
#include "dx_test.h"
#include "dx_util.h"
#include "test_analysis_synth.h"

static char tmp[64];
static char demix[4096];

/* Run `demix ARGS` in tmp with stdout to tmp/out (stderr to tmp/log.txt);
 * its exit status. */
static int run(const char *args) {
  char cmd[8192];
  snprintf(cmd, sizeof cmd, "cd %s && DEMIX_HOME=%s %s %s >%s/out 2>>%s/log.txt", tmp, tmp, demix, args, tmp, tmp);
  int rc = system(cmd);
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static json_object *out_json(void) {
  char path[128];
  snprintf(path, sizeof path, "%s/out", tmp);
  return json_object_from_file(path);
}

static char *out_text(void) {
  char path[128], *data = NULL;
  size_t n;
  snprintf(path, sizeof path, "%s/out", tmp);
  return dx_read_file(path, &data, &n) == DX_OK ? data : NULL;
}

/* Track kind 0 mix, 1 drums at 96 BPM, 2 progression in E major, 20 s
 * (kind 0 also 2 s: short) as rel. */
static void write_track(const char *rel, int kind, double seconds, dx_audio_encoding enc) {
  char path[256];
  size_t n = 0;
  float *y = kind == 0   ? synth_music(seconds, 22050, &n)
             : kind == 1 ? synth_drums(96.0, seconds, 22050, &n)
                         : synth_progression(4, 0, seconds, 2.0, 22050, &n);
  snprintf(path, sizeof path, "%s/%s", tmp, rel);
  CHECK(y && dx_audio_write(path, y, 1, n, 22050, enc, NULL) == DX_OK);
  free(y);
}

static int setup(void) {
  if (tmp[0]) return 1;
  snprintf(demix, sizeof demix, "%s", dx_test_demix_path());
  snprintf(tmp, sizeof tmp, "/tmp/dx_ancli_XXXXXX");
  if (!mkdtemp(tmp)) return 0;
  const char *dirs[] = {"lib/Artist/Album", "lib/Drums", "lib/.hidden", "empty"};
  for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
    char d[256];
    snprintf(d, sizeof d, "%s/%s", tmp, dirs[i]);
    dx_mkdirs(d);
  }
  write_track("lib/mix.wav", 0, 20.0, DX_ENC_WAV_PCM16);
  write_track("lib/Drums/beat.flac", 1, 20.0, DX_ENC_FLAC);
  write_track("lib/Artist/Album/01 E major.wav", 2, 20.0, DX_ENC_WAV_FLOAT);
  write_track("lib/.hidden/skip.wav", 0, 2.0, DX_ENC_WAV_PCM16);
  char p[256];
  snprintf(p, sizeof p, "%s/lib/Artist/broken.mp3", tmp);
  CHECK(dx_write_file_atomic(p, "ID3 this is not an MP3 stream", 29) == DX_OK);
  snprintf(p, sizeof p, "%s/lib/notes.txt", tmp);
  CHECK(dx_write_file_atomic(p, "liner notes", 11) == DX_OK);
  char up[256];
  snprintf(p, sizeof p, "%s/lib", tmp);
  snprintf(up, sizeof up, "%s/lib/Artist/back", tmp);
  CHECK(symlink(p, up) == 0);
  return 1;
}

static const char *const expect_files[] = {"lib/Artist/Album/01 E major.wav", "lib/Artist/broken.mp3",
                                           "lib/Drums/beat.flac", "lib/mix.wav"};

/* The array of the library run: every file in path order, the groups
 * asked for only, the right answers, the damaged file's error. */
static void check_library(json_object *arr, const char *what) {
  CHECK_MSG(arr && json_object_is_type(arr, json_type_array) && json_object_array_length(arr) == 4, "%s: %s", what,
            arr ? json_object_to_json_string(arr) : "no JSON");
  if (!arr || !json_object_is_type(arr, json_type_array) || json_object_array_length(arr) != 4) return;
  for (size_t i = 0; i < 4; i++) {
    json_object *o = json_object_array_get_idx(arr, i), *v;
    const char *file = json_object_object_get_ex(o, "file", &v) ? json_object_get_string(v) : "";
    CHECK_MSG(!strcmp(file, expect_files[i]), "%s: entry %zu is %s, not %s", what, i, file, expect_files[i]);
    if (i == 1) {
      json_object *e, *code;
      CHECK(json_object_object_get_ex(o, "error", &e) && json_object_object_get_ex(e, "code", &code));
      CHECK(!json_object_object_get_ex(o, "tempo", &v));
      continue;
    }
    CHECK_MSG(json_object_object_get_ex(o, "tempo", &v) && json_object_object_get_ex(o, "key", &v), "%s: %s", what,
              file);
    CHECK_MSG(!json_object_object_get_ex(o, "loudness", &v) && !json_object_object_get_ex(o, "features", &v) &&
                  !json_object_object_get_ex(o, "spectral_centroid", &v),
              "%s: %s has groups not asked for", what, file);
  }
  json_object *v;
  json_object *mix = json_object_array_get_idx(arr, 3), *drums = json_object_array_get_idx(arr, 2);
  json_object *emaj = json_object_array_get_idx(arr, 0);
  double t_mix = json_object_object_get_ex(mix, "tempo", &v) ? json_object_get_double(v) : 0;
  double t_drums = json_object_object_get_ex(drums, "tempo", &v) ? json_object_get_double(v) : 0;
  CHECK_MSG(fabs(t_mix - 120.0) < 2.4, "%s: mix tempo %.2f", what, t_mix);
  CHECK_MSG(fabs(t_drums - 96.0) < 2.0, "%s: drums tempo %.2f", what, t_drums);
  const char *k_mix = json_object_object_get_ex(mix, "key", &v) ? json_object_get_string(v) : "";
  const char *k_emaj = json_object_object_get_ex(emaj, "key", &v) ? json_object_get_string(v) : "";
  CHECK_MSG(k_mix && !strcmp(k_mix, "A minor"), "%s: mix key %s", what, k_mix);
  CHECK_MSG(k_emaj && !strcmp(k_emaj, "E major"), "%s: progression key %s", what, k_emaj);
}

DX_TEST(library_folder_to_json) {
  CHECK(setup());
  if (access(demix, X_OK) != 0) SKIP("%s not built", demix);
  CHECK(run("analyze --json --features tempo,key lib") == 1); /* the damaged file */
  json_object *a = out_json();
  check_library(a, "-j 1");
  /* two workers: the same entries in the same order, the same numbers */
  CHECK(run("analyze --json --features tempo,key -j 2 lib/") == 1);
  json_object *b = out_json();
  if (b && json_object_is_type(b, json_type_array)) {
    /* lib/ and lib name the same files */
    check_library(b, "-j 2");
    for (size_t i = 0; a && i < json_object_array_length(a) && i < json_object_array_length(b); i++) {
      json_object *x = json_object_array_get_idx(a, i), *y = json_object_array_get_idx(b, i), *vx, *vy;
      if (json_object_object_get_ex(x, "beats", &vx) && json_object_object_get_ex(y, "beats", &vy))
        CHECK_MSG(!strcmp(json_object_to_json_string(vx), json_object_to_json_string(vy)), "beats of entry %zu", i);
    }
  }
  json_object_put(a);
  json_object_put(b);
}

DX_TEST(single_file_and_readable_output) {
  CHECK(setup());
  if (access(demix, X_OK) != 0) SKIP("%s not built", demix);
  CHECK(run("analyze --json --features loudness lib/mix.wav") == 0);
  json_object *o = out_json(), *v;
  CHECK(o && json_object_is_type(o, json_type_object));
  CHECK(o && json_object_object_get_ex(o, "loudness", &v) && !json_object_object_get_ex(o, "tempo", &v));
  json_object_put(o);
  CHECK(run("analyze --features key 'lib/Artist/Album/01 E major.wav'") == 0);
  char *text = out_text();
  CHECK_MSG(text && strstr(text, "01 E major.wav") && strstr(text, "E major (12B"), "%s", text ? text : "no output");
  free(text);
}

/* The library as JSON lines and as CSV: the same files in the same order
 * and the same answers as the JSON array; CSV cells quoted where a name
 * holds a comma or a quote; the damaged file a row with its error. */
DX_TEST(library_as_jsonl_and_csv) {
  CHECK(setup());
  if (access(demix, X_OK) != 0) SKIP("%s not built", demix);
  CHECK(run("analyze --json --features tempo,key lib") == 1);
  json_object *arr = out_json();
  CHECK(run("analyze --jsonl --features tempo,key -j 2 lib") == 1);
  char *text = out_text();
  CHECK(text != NULL);
  size_t i = 0;
  for (char *line = text, *nl; text && arr && (nl = strchr(line, '\n')); line = nl + 1, i++) {
    *nl = 0;
    json_object *o = json_tokener_parse(line), *v, *w;
    json_object *a = i < json_object_array_length(arr) ? json_object_array_get_idx(arr, i) : NULL;
    CHECK_MSG(o && a && !strchr(line, '\n'), "line %zu: %s", i, line);
    if (o && a) {
      CHECK(json_object_object_get_ex(o, "file", &v) && json_object_object_get_ex(a, "file", &w) &&
            !strcmp(json_object_get_string(v), json_object_get_string(w)));
      if (json_object_object_get_ex(a, "key", &w))
        CHECK(json_object_object_get_ex(o, "key", &v) && !strcmp(json_object_get_string(v), json_object_get_string(w)));
      else
        CHECK(json_object_object_get_ex(o, "error", &v));
    }
    json_object_put(o);
  }
  CHECK_MSG(i == 4, "%zu JSON lines", i);
  free(text);
  json_object_put(arr);

  CHECK(run("analyze --csv --features tempo,key lib") == 1);
  text = out_text();
  CHECK(text && !strncmp(text, "file,error,duration,sample_rate,channels,tempo,", 47));
  const char *mix = text ? strstr(text, "\nlib/mix.wav,,20,22050,1,") : NULL;
  CHECK_MSG(mix != NULL, "%s", text ? text : "no output");
  if (mix) {
    double tempo = atof(mix + strlen("\nlib/mix.wav,,20,22050,1,"));
    CHECK_MSG(fabs(tempo - 120.0) < 2.4, "mix tempo %g", tempo);
    CHECK(strstr(mix, ",A minor,8A,") != NULL);
  }
  CHECK(text && strstr(text, "\nlib/Artist/broken.mp3,") && strstr(text, "\nlib/Artist/Album/01 E major.wav,,"));
  int lines = 0;
  for (const char *c = text; c && *c; c++) lines += *c == '\n';
  CHECK_MSG(lines == 5, "%d CSV lines", lines); /* header and four files */
  free(text);

  char d[256], src[256], dst[256];
  snprintf(d, sizeof d, "%s/csv", tmp);
  dx_mkdirs(d);
  snprintf(src, sizeof src, "%s/lib/mix.wav", tmp);
  snprintf(dst, sizeof dst, "%s/csv/a, \"b\".wav", tmp);
  CHECK(link(src, dst) == 0);
  CHECK(run("analyze --csv --features key csv") == 0);
  text = out_text();
  CHECK_MSG(text && strstr(text, "\n\"csv/a, \"\"b\"\".wav\",,20,"), "%s", text ? text : "no output");
  free(text);
}

DX_TEST(usage_errors) {
  CHECK(setup());
  if (access(demix, X_OK) != 0) SKIP("%s not built", demix);
  CHECK(run("analyze") == 2);
  CHECK(run("analyze empty") == 2);
  CHECK(run("analyze --features tempo,kazoo lib/mix.wav") == 2);
  CHECK(run("analyze -j 0 lib/mix.wav") == 2);
  CHECK(run("analyze --json --csv lib/mix.wav") == 2);
  CHECK(run("analyze --help") == 0);
}

DX_TEST(zz_cleanup) {
  if (tmp[0]) dx_rmtree(tmp);
}

DX_TEST_MAIN(DX_T(library_folder_to_json), DX_T(library_as_jsonl_and_csv), DX_T(single_file_and_readable_output),
             DX_T(usage_errors),
             DX_T(zz_cleanup))
