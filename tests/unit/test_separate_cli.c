/* test_separate_cli.c: the `demix separate` command end to end:
 *   demix separate --repo DIR -n htdemucs_tiny --shifts 0 --float32 -d cpu -o OUT mix.wav
 * on the kit's htdemucs_tiny separate/input (written as a float WAV)
 * reproduces separate/output within 2e-3 relative L2; a second run skips the
 * finished track and --overwrite redoes it; --two-stems; hpss stems written
 * as float WAV add back to the mix; a directory argument, whose nested
 * folders are kept below OUT/MODEL and whose output folder inside it is
 * left out; two tracks that would share a stem folder refused; MP3 stems at
 * a constant 320 kbps or --mp3-bitrate's; --clip-mode; --filename; usage
 * errors. */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dx_audio.h"
#include "dx_test.h"
#include "dx_util.h"

static char tmp[64];
static char demix[4096];

static int run(const char *args) {
  char cmd[8192];
  snprintf(cmd, sizeof cmd, "cd %s && DEMIX_HOME=%s DEMIX_MODEL_DIR=%s/models %s %s 2>>%s/log.txt", tmp, tmp, tmp, demix,
           args, tmp);
  int rc = system(cmd);
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static float *load_stem(const char *rel, size_t *frames) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", tmp, rel);
  dx_audio a = {0};
  dx_errbuf err = {{0}};
  if (dx_audio_load(path, 0, &a, &err) != DX_OK) {
    fprintf(stderr, "  cannot load %s: %s\n", path, err.msg);
    return NULL;
  }
  *frames = a.frames;
  return a.data;
}

/* stat of tmp/rel: 0, or -1 when it is not there */
static int stat_rel(const char *rel, struct stat *sb) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", tmp, rel);
  return stat(path, sb);
}

static long long mtime_ns(const char *rel) {
  struct stat sb;
  if (stat_rel(rel, &sb) != 0) return -1;
  return (long long)sb.st_mtim.tv_sec * 1000000000LL + sb.st_mtim.tv_nsec;
}

static int setup(void) {
  if (tmp[0]) return 1;
  snprintf(demix, sizeof demix, "%s", dx_test_demix_path());
  snprintf(tmp, sizeof tmp, "/tmp/dx_sepcli_XXXXXX");
  if (!mkdtemp(tmp)) return 0;
  char dir[128], src[1024], dst[256];
  snprintf(dir, sizeof dir, "%s/repo", tmp);
  dx_mkdirs(dir);
  const char *ref = dx_test_ref_path("demucs/htdemucs_tiny.th");
  if (ref[0] == '/')
    snprintf(src, sizeof src, "%s", ref);
  else {
    char cwd[512];
    if (!getcwd(cwd, sizeof cwd)) return 0;
    snprintf(src, sizeof src, "%s/%s", cwd, ref);
  }
  snprintf(dst, sizeof dst, "%s/htdemucs_tiny.th", dir);
  if (symlink(src, dst) != 0) return 0;
  size_t n = 0;
  float *in = dx_test_read_tensor(dx_test_ref_path("demucs/htdemucs_tiny/separate_input.f16"), &n);
  if (!in) return 0;
  char path[256];
  snprintf(path, sizeof path, "%s/mix.wav", tmp);
  dx_status st = dx_audio_write(path, in, 2, n / 2, 44100, DX_ENC_WAV_FLOAT, NULL);
  free(in);
  return st == DX_OK;
}

DX_TEST(htdemucs_tiny_reproduces_kit) {
  CHECK(setup());
  if (access(demix, X_OK) != 0) SKIP("%s not built", demix);
  CHECK(run("separate --repo repo -n htdemucs_tiny --shifts 0 --float32 -d cpu -o OUT mix.wav") == 0);
  size_t no = 0;
  float *ref = dx_test_read_tensor(dx_test_ref_path("demucs/htdemucs_tiny/separate_output.f16"), &no);
  CHECK(ref != NULL);
  if (!ref) return;
  const char *srcs[4] = {"drums", "bass", "other", "vocals"};
  size_t L = no / 8;
  float *got = malloc(no * sizeof *got);
  int ok = 1;
  for (int k = 0; k < 4; k++) {
    char rel[128];
    size_t frames = 0;
    snprintf(rel, sizeof rel, "OUT/htdemucs_tiny/mix/%s.wav", srcs[k]);
    float *s = load_stem(rel, &frames);
    CHECK(s && frames == L);
    if (!s || frames != L) {
      ok = 0;
      free(s);
      continue;
    }
    memcpy(got + (size_t)k * 2 * L, s, 2 * L * sizeof *s);
    free(s);
  }
  if (ok) {
    double e = dx_test_rel_l2(got, ref, no);
    fprintf(stderr, "  demix separate htdemucs_tiny: rel L2 %.3g\n", e);
    CHECK_MSG(e < 2e-3, "rel L2 %.3g", e);
  }
  /* a finished track is skipped; --overwrite redoes it */
  long long t0 = mtime_ns("OUT/htdemucs_tiny/mix/vocals.wav");
  CHECK(run("separate --repo repo -n htdemucs_tiny --shifts 0 --float32 -d cpu -o OUT mix.wav") == 0);
  CHECK(mtime_ns("OUT/htdemucs_tiny/mix/vocals.wav") == t0);
  CHECK(run("separate --repo repo -n htdemucs_tiny --shifts 0 --float32 -d cpu -o OUT --overwrite mix.wav") == 0);
  CHECK(mtime_ns("OUT/htdemucs_tiny/mix/vocals.wav") != t0);
  free(got);
  free(ref);
}

DX_TEST(two_stems_and_hpss) {
  CHECK(setup());
  if (access(demix, X_OK) != 0) SKIP("%s not built", demix);
  CHECK(run("separate --repo repo -n htdemucs_tiny --two-stems vocals --shifts 1 --seed 3 -d cpu -o OUT2 mix.wav") == 0);
  CHECK(mtime_ns("OUT2/htdemucs_tiny/mix/vocals.wav") > 0 && mtime_ns("OUT2/htdemucs_tiny/mix/no_vocals.wav") > 0);
  CHECK(mtime_ns("OUT2/htdemucs_tiny/mix/drums.wav") < 0);
  CHECK(run("separate --repo repo -n htdemucs_tiny --two-stems kazoo -d cpu -o OUT2 mix.wav") != 0);

  /* hpss over a directory argument, float output: the stems add back to the mix */
  char d[128], p[160];
  snprintf(d, sizeof d, "%s/tracks", tmp);
  dx_mkdirs(d);
  snprintf(p, sizeof p, "%s/mix.wav", tmp);
  char q[160];
  snprintf(q, sizeof q, "%s/tracks/a.wav", tmp);
  CHECK(link(p, q) == 0);
  /* a nested folder's track keeps its folder below OUT/MODEL, so
   * tracks/a.wav and tracks/sub/a.wav do not meet */
  snprintf(d, sizeof d, "%s/tracks/sub", tmp);
  dx_mkdirs(d);
  snprintf(q, sizeof q, "%s/tracks/sub/a.wav", tmp);
  CHECK(link(p, q) == 0);
  CHECK(run("separate -n hpss --float32 -o OUT3 tracks") == 0);
  CHECK(mtime_ns("OUT3/hpss/sub/a/harmonic.wav") > 0 && mtime_ns("OUT3/hpss/sub/a/percussive.wav") > 0);
  /* the output folder inside the walked folder: a second run leaves the
   * first run's stems out instead of separating them as tracks; with -o
   * at the folder itself, OUT/MODEL is left out */
  CHECK(run("separate -n hpss -o tracks/OUT5 tracks") == 0);
  CHECK(run("separate --repo repo -n htdemucs_tiny --shifts 0 -d cpu -o tracks/OUT5 tracks") == 0);
  CHECK(mtime_ns("tracks/OUT5/hpss/sub/a/harmonic.wav") > 0);
  CHECK(mtime_ns("tracks/OUT5/htdemucs_tiny/sub/a/vocals.wav") > 0);
  CHECK(mtime_ns("tracks/OUT5/htdemucs_tiny/OUT5") < 0);
  CHECK(run("separate -n hpss -o tracks tracks") == 0);
  CHECK(run("separate -n hpss --overwrite -o tracks tracks") == 0);
  CHECK(mtime_ns("tracks/hpss/a/harmonic.wav") > 0);
  CHECK(mtime_ns("tracks/hpss/hpss") < 0);
  /* named directly, both would go to OUT4/hpss/a: refused before any work */
  CHECK(run("separate -n hpss -o OUT4 tracks/a.wav tracks/sub/a.wav") == 2);
  CHECK(mtime_ns("OUT4") < 0);
  size_t nh = 0, np = 0, nm = 0;
  float *h = load_stem("OUT3/hpss/a/harmonic.wav", &nh), *pc = load_stem("OUT3/hpss/a/percussive.wav", &np);
  float *mix = load_stem("mix.wav", &nm);
  CHECK(h && pc && mix && nh == nm && np == nm);
  if (h && pc && mix && nh == nm && np == nm) {
    double worst = 0;
    for (size_t i = 0; i < 2 * nm; i++) worst = fmax(worst, fabs((double)h[i] + pc[i] - mix[i]));
    CHECK_MSG(worst < 1e-6, "hpss: max |h + p - mix| = %.3g", worst);
  }
  free(h);
  free(pc);
  free(mix);
}

static long long file_size(const char *rel) {
  struct stat sb;
  return stat_rel(rel, &sb) == 0 ? (long long)sb.st_size : -1;
}

/* --mp3 writes constant bit rate MP3: 320 kbps as the official tool does
 * by default, or --mp3-bitrate's */
DX_TEST(mp3_bit_rate) {
  CHECK(setup());
  if (access(demix, X_OK) != 0) SKIP("%s not built", demix);
  size_t frames = 0;
  float *mix = load_stem("mix.wav", &frames);
  CHECK(mix != NULL);
  free(mix);
  double seconds = (double)frames / 44100;
  const char *runs[2] = {"separate -n hpss --mp3 -o MP3A mix.wav", "separate -n hpss --mp3 --mp3-bitrate 96 -o MP3B mix.wav"};
  const char *files[2] = {"MP3A/hpss/mix/harmonic.mp3", "MP3B/hpss/mix/percussive.mp3"};
  const double kbps[2] = {320, 96};
  for (int i = 0; i < 2; i++) {
    CHECK(run(runs[i]) == 0);
    long long n = file_size(files[i]);
    double got = n * 8.0 / seconds / 1000.0;
    /* LAME's last frames and padding add a little */
    CHECK_MSG(got > 0.98 * kbps[i] && got < 1.06 * kbps[i], "%s: %.1f kbps, want %.0f", files[i], got, kbps[i]);
    size_t mf = 0;
    float *m = load_stem(files[i], &mf);
    CHECK(m && mf >= frames && mf < frames + 44100 / 10);
    free(m);
  }
  CHECK(run("separate -n hpss --mp3-bitrate 96 -o MP3C mix.wav") == 2); /* without --mp3 */
  CHECK(run("separate -n hpss --mp3 --mp3-bitrate 500 -o MP3C mix.wav") == 2);
  CHECK(mtime_ns("MP3C") < 0);
}

/* --clip-mode on a mix four times too loud, float stems: none keeps the
 * peaks over 1, rescale scales the whole stem to peak 1/1.01, clamp cuts
 * at 0.99 and leaves the rest, tanh is tanh of none (official save_audio) */
DX_TEST(clip_modes) {
  CHECK(setup());
  if (access(demix, X_OK) != 0) SKIP("%s not built", demix);
  size_t n = 0;
  float *mix = load_stem("mix.wav", &n);
  CHECK(mix != NULL);
  if (!mix) return;
  float *planar = malloc(2 * n * sizeof *planar);
  for (size_t i = 0; i < n; i++)
    for (int c = 0; c < 2; c++) planar[(size_t)c * n + i] = 4.0f * mix[2 * i + (size_t)c];
  char path[256];
  snprintf(path, sizeof path, "%s/hot.wav", tmp);
  CHECK(dx_audio_write(path, planar, 2, n, 44100, DX_ENC_WAV_FLOAT, NULL) == DX_OK);
  free(planar);
  free(mix);
  const char *modes[4] = {"none", "rescale", "clamp", "tanh"};
  float *h[4] = {0};
  size_t hn[4] = {0};
  for (int m = 0; m < 4; m++) {
    char args[256], rel[128];
    snprintf(args, sizeof args, "separate -n hpss --float32 --clip-mode %s -o CLIP_%s hot.wav", modes[m], modes[m]);
    CHECK(run(args) == 0);
    snprintf(rel, sizeof rel, "CLIP_%s/hpss/hot/harmonic.wav", modes[m]);
    h[m] = load_stem(rel, &hn[m]);
    CHECK(h[m] && hn[m] == n);
  }
  if (h[0] && h[1] && h[2] && h[3] && hn[0] == n && hn[1] == n && hn[2] == n && hn[3] == n) {
    float peak = 0;
    for (size_t i = 0; i < 2 * n; i++) peak = fmaxf(peak, fabsf(h[0][i]));
    CHECK_MSG(peak > 1.0f, "the test mix should drive the stem over full scale (peak %g)", peak);
    double g = 1.0 / (1.01 * peak), worst[3] = {0, 0, 0};
    int clamped = 0;
    for (size_t i = 0; i < 2 * n; i++) {
      worst[0] = fmax(worst[0], fabs(h[1][i] - h[0][i] * g));
      double c = fmin(fmax(h[0][i], -0.99), 0.99);
      clamped += fabsf(h[0][i]) > 0.99f;
      worst[1] = fmax(worst[1], fabs(h[2][i] - c));
      worst[2] = fmax(worst[2], fabs(h[3][i] - tanh(h[0][i])));
    }
    CHECK(clamped > 0);
    CHECK_MSG(worst[0] < 1e-6 && worst[1] < 1e-6 && worst[2] < 1e-6, "rescale %.3g clamp %.3g tanh %.3g", worst[0],
              worst[1], worst[2]);
  }
  for (int m = 0; m < 4; m++) free(h[m]);
  CHECK(run("separate -n hpss --clip-mode soft -o CLIP_bad hot.wav") == 2);
}

static int same_bytes(const char *rel_a, const char *rel_b) {
  char a[512], b[512];
  snprintf(a, sizeof a, "%s/%s", tmp, rel_a);
  snprintf(b, sizeof b, "%s/%s", tmp, rel_b);
  size_t na = 0, nb = 0;
  char *da = NULL, *db = NULL;
  int same = dx_read_file(a, &da, &na) == DX_OK && dx_read_file(b, &db, &nb) == DX_OK && na == nb &&
             !memcmp(da, db, na);
  free(da);
  free(db);
  return same;
}

/* --filename as the official flag: the stems of a track go where the
 * pattern says (byte for byte the default layout's), nothing is left in
 * OUT/MODEL besides them, a rerun skips the track, and patterns that would
 * put two stems in one file or leave OUT/MODEL are refused */
DX_TEST(filename_pattern) {
  CHECK(setup());
  if (access(demix, X_OK) != 0) SKIP("%s not built", demix);
  CHECK(run("separate -n hpss -o FNA mix.wav") == 0);
  CHECK(run("separate -n hpss --filename {stem}/{track}.{trackext}.{ext} -o FNB mix.wav") == 0);
  CHECK(same_bytes("FNA/hpss/mix/harmonic.wav", "FNB/hpss/harmonic/mix.wav.wav"));
  CHECK(same_bytes("FNA/hpss/mix/percussive.wav", "FNB/hpss/percussive/mix.wav.wav"));
  char dir[256];
  snprintf(dir, sizeof dir, "%s/FNB/hpss", tmp);
  DIR *d = opendir(dir);
  int entries = 0;
  for (struct dirent *e; d && (e = readdir(d));) entries += e->d_name[0] != '.' || strncmp(e->d_name, ".demix", 6) == 0;
  if (d) closedir(d);
  CHECK_MSG(entries == 2, "%d entries in FNB/hpss (harmonic/, percussive/ and nothing staged)", entries);
  long long t0 = mtime_ns("FNB/hpss/harmonic/mix.wav.wav");
  CHECK(run("separate -n hpss --filename {stem}/{track}.{trackext}.{ext} -o FNB mix.wav") == 0);
  CHECK(mtime_ns("FNB/hpss/harmonic/mix.wav.wav") == t0);
  CHECK(run("separate -n hpss --filename {track}.{ext} -o FNC mix.wav") == 2);     /* no {stem} */
  CHECK(run("separate -n hpss --filename {stem}/{name}.{ext} -o FNC mix.wav") == 2); /* unknown field */
  CHECK(run("separate -n hpss --filename ../{stem}.{ext} -o FNC mix.wav") == 2);
  CHECK(run("separate -n hpss --filename /tmp/{stem}.{ext} -o FNC mix.wav") == 2);
  CHECK(run("separate -n hpss --filename {stem}.{ext} -o FNC mix.wav tracks/a.wav") == 2); /* two tracks, one file */
  CHECK(mtime_ns("FNC") < 0);
  /* a track named "..": its stems stay below OUT/MODEL, in a folder named
   * after the whole file name */
  char odd[256], src[256];
  snprintf(src, sizeof src, "%s/mix.wav", tmp);
  snprintf(odd, sizeof odd, "%s/...wav", tmp);
  CHECK(link(src, odd) == 0);
  CHECK(run("separate -n hpss -o FND ...wav") == 0);
  CHECK(mtime_ns("FND/hpss/...wav/harmonic.wav") > 0);
  CHECK(mtime_ns("FND/harmonic.wav") < 0);
}

DX_TEST(usage_errors) {
  CHECK(setup());
  if (access(demix, X_OK) != 0) SKIP("%s not built", demix);
  CHECK(run("separate") == 2);
  CHECK(run("separate --shifts x mix.wav") == 2);
  CHECK(run("separate --int24 --float32 mix.wav") == 2);
  CHECK(run("separate --repo repo -n nosuch mix.wav") == 1);
  CHECK(run("separate --repo repo -n htdemucs mix.wav") == 1); /* not installed */
  CHECK(run("separate --repo repo -n hpss missing.wav") == 1);
  CHECK(run("separate --help") == 0);
}

DX_TEST(zz_cleanup) {
  if (tmp[0]) dx_rmtree(tmp);
}

DX_TEST_MAIN(DX_T(htdemucs_tiny_reproduces_kit), DX_T(two_stems_and_hpss), DX_T(mp3_bit_rate), DX_T(clip_modes), DX_T(filename_pattern),
             DX_T(usage_errors),
             DX_T(zz_cleanup))
