/* bench_analysis.c: the analysis benchmark's C driver (built by run.sh
 * against the build's static libraries).
 *
 *   bench_analysis make DIR N SECONDS     write N synthetic 44.1 kHz stereo
 *                                         16-bit WAV tracks (drums + chords,
 *                                         tempo and key varying per track)
 *   bench_analysis run DEVICE FILE...     analyse every file (all feature
 *                                         groups) with one backend and one
 *                                         analyzer, after one warm-up run
 *
 * `run` prints one JSON line: device, tracks, audio seconds, and seconds
 * spent decoding, resampling, moving data to/from the device, computing
 * features and measuring loudness, per track and as x-realtime. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dx_analysis.h"
#include "dx_util.h"
#include "../../tests/unit/test_analysis_synth.h"

static int make(const char *dir, int n, double seconds) {
  if (dx_mkdirs(dir) != DX_OK) return 1;
  for (int i = 0; i < n; i++) {
    double bpm = 70 + (i * 37) % 111;
    int key = i % 24, sr = 44100;
    size_t na = 0, nb = 0;
    float *a = synth_progression(key % 12, key >= 12, seconds, 2.0, sr, &na);
    float *b = synth_drums_style(bpm, seconds, sr, i % 2, &nb);
    if (!a || !b) return 1;
    float *st = malloc(2 * na * sizeof *st);
    if (!st) return 1;
    synth_rng rng = {(uint64_t)i + 1};
    for (size_t k = 0; k < na; k++) {
      float v = 0.6f * a[k] + 0.5f * b[k] + 0.002f * synth_noise(&rng);
      st[k] = v;
      st[na + k] = 0.8f * v;
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/track_%03d.wav", dir, i);
    dx_errbuf err = {{0}};
    if (dx_audio_write(path, st, 2, na, sr, DX_ENC_WAV_PCM16, &err) != DX_OK) {
      fprintf(stderr, "%s: %s\n", path, err.msg);
      return 1;
    }
    free(a);
    free(b);
    free(st);
  }
  return 0;
}

static int run(const char *device, int nfiles, char **files) {
  dx_backend *be = NULL;
  dx_analyzer *an = NULL;
  dx_errbuf err = {{0}};
  dx_analysis_params p;
  dx_analysis_default_params(&p);
  if (dx_backend_open(device, &be, &err) != DX_OK || dx_analyzer_open(be, &p, &an, &err) != DX_OK) {
    fprintf(stderr, "bench_analysis: %s\n", err.msg);
    return 1;
  }
  double audio = 0, dec = 0, res = 0, xfer = 0, comp = 0, loud = 0, wall = 0;
  for (int i = -1; i < nfiles; i++) { /* i = -1: warm-up on the first file, not counted */
    const char *f = files[i < 0 ? 0 : i];
    dx_analysis_result r;
    double t0 = dx_now();
    dx_status st = dx_analyzer_run_file(an, f, DX_AF_ALL, NULL, NULL, &r, &err);
    double t = dx_now() - t0;
    if (st != DX_OK) {
      fprintf(stderr, "bench_analysis: %s: %s\n", f, err.msg);
      return 1;
    }
    if (i >= 0) {
      audio += r.duration;
      dec += r.t_decode;
      res += r.t_resample;
      xfer += r.t_transfer;
      comp += r.t_compute;
      loud += r.t_loudness;
      wall += t;
    }
    dx_analysis_result_free(&r);
  }
  double analysis = wall - dec; /* everything after decoding: resample, transfer, features, tempo/key, loudness */
  printf("{\"impl\": \"demix\", \"device\": \"%s\", \"device_desc\": \"%s\", \"tracks\": %d, \"audio_s\": %.1f,"
         " \"decode_s\": %.3f, \"resample_s\": %.3f, \"transfer_s\": %.3f, \"features_s\": %.3f, \"loudness_s\": %.3f,"
         " \"total_s\": %.3f, \"s_per_track\": %.4f, \"s_per_track_after_decode\": %.4f,"
         " \"x_realtime\": %.1f, \"x_realtime_after_decode\": %.1f}\n",
         be->name, be->device_desc, nfiles, audio, dec, res, xfer, comp, loud, wall, wall / nfiles, analysis / nfiles,
         audio / wall, audio / analysis);
  dx_analyzer_close(an);
  dx_backend_close(be);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 5 && !strcmp(argv[1], "make")) return make(argv[2], atoi(argv[3]), atof(argv[4]));
  if (argc >= 4 && !strcmp(argv[1], "run")) return run(argv[2], argc - 3, argv + 3);
  fprintf(stderr, "usage: bench_analysis make DIR N SECONDS | bench_analysis run cpu|cuda|auto FILE...\n");
  return 2;
}
