/* test_analysis_synth.h: known-truth test signals for the analysis tests,
 * synthesised deterministically (fixed-seed noise): drum patterns at a
 * given tempo, chord progressions in a given key, and a music-like mix of
 * both. Header-only (static functions) so each test program carries its
 * own copy. Samples are mono float at the rate asked for. */
#ifndef TEST_ANALYSIS_SYNTH_H
#define TEST_ANALYSIS_SYNTH_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  uint64_t s;
} synth_rng;

static inline float synth_noise(synth_rng *r) { /* uniform in [-1, 1) */
  r->s = r->s * 6364136223846793005ULL + 1442695040888963407ULL;
  return (float)((r->s >> 40) * (1.0 / 8388608.0) - 1.0);
}

/* Add one drum hit at sample `at`. kind 0 kick (pitch sweep 110 -> 45 Hz,
 * 180 ms), 1 snare (noise burst + 190 Hz tone, 130 ms), 2 closed hat
 * (high-passed noise, 35 ms). */
static inline void synth_hit(float *y, size_t n, size_t at, int sr, int kind, float gain, synth_rng *rng) {
  size_t len = (size_t)(sr * (kind == 0 ? 0.18 : kind == 1 ? 0.13 : 0.035));
  double phase = 0;
  float prev = 0;
  for (size_t i = 0; i < len && at + i < n; i++) {
    double t = (double)i / sr;
    float v;
    if (kind == 0) {
      double f = 45 + 65 * exp(-t / 0.03);
      phase += 2 * M_PI * f / sr;
      v = (float)(sin(phase) * exp(-t / 0.06));
    } else if (kind == 1) {
      v = (float)(0.6 * synth_noise(rng) * exp(-t / 0.04) + 0.5 * sin(2 * M_PI * 190 * t) * exp(-t / 0.03));
    } else {
      float w = synth_noise(rng);
      v = (float)((w - prev) * 0.5 * exp(-t / 0.01)); /* first difference: a high-pass */
      prev = w;
    }
    y[at + i] += gain * v;
  }
}

/* A drum pattern at bpm for `seconds`. style 0, rock/pop: kick on beats 1
 * and 3, snare on 2 and 4, closed hats on every eighth (softer off the
 * beat). style 1, four on the floor: kick on every beat, snare on 2 and 4,
 * hats on the off-beats only. */
static inline float *synth_drums_style(double bpm, double seconds, int sr, int style, size_t *n_out) {
  size_t n = (size_t)(seconds * sr);
  float *y = calloc(n ? n : 1, sizeof *y);
  *n_out = n;
  if (!y) return NULL;
  synth_rng rng = {12345};
  double beat = 60.0 / bpm;
  for (int b = 0;; b++) {
    double t = 0.05 + b * beat;
    size_t at = (size_t)(t * sr), off = (size_t)((t + beat / 2) * sr);
    if (at >= n) break;
    if (style == 0) {
      synth_hit(y, n, at, sr, b % 2 == 0 ? 0 : 1, 0.5f, &rng);
      synth_hit(y, n, at, sr, 2, 0.25f, &rng);
      synth_hit(y, n, off, sr, 2, 0.15f, &rng);
    } else {
      synth_hit(y, n, at, sr, 0, 0.6f, &rng);
      if (b % 2) synth_hit(y, n, at, sr, 1, 0.4f, &rng);
      synth_hit(y, n, off, sr, 2, 0.25f, &rng);
    }
  }
  return y;
}

static inline float *synth_drums(double bpm, double seconds, int sr, size_t *n_out) {
  return synth_drums_style(bpm, seconds, sr, 0, n_out);
}

/* Add a harmonic tone (5 partials, 1/h amplitudes) of MIDI note `midi`
 * from sample `at` for `len` samples, with a short attack and release. */
static inline void synth_note(float *y, size_t n, size_t at, size_t len, int sr, int midi, float gain) {
  double f0 = 440.0 * pow(2.0, (midi - 69) / 12.0);
  size_t ramp = (size_t)(0.01 * sr);
  for (size_t i = 0; i < len && at + i < n; i++) {
    double t = (double)i / sr, env = 1.0;
    if (i < ramp) env = (double)i / ramp;
    if (len - i < ramp) env = (double)(len - i) / ramp;
    double v = 0;
    for (int h = 1; h <= 5; h++)
      if (f0 * h < sr / 2.0) v += sin(2 * M_PI * f0 * h * t) / h;
    y[at + i] += (float)(gain * env * v * exp(-t / 1.5));
  }
}

/* Chord progression in a key: tonic pitch class 0..11 (C = 0), minor or
 * major. Major: I - IV - V - I; minor: i - iv - V - i (harmonic minor's
 * major dominant). Each chord lasts chord_s seconds: a triad in the octave
 * above middle C's region plus the root an octave below; the progression
 * repeats to fill `seconds`. */
static inline float *synth_progression(int tonic, int minor, double seconds, double chord_s, int sr, size_t *n_out) {
  size_t n = (size_t)(seconds * sr);
  float *y = calloc(n, sizeof *y);
  if (!y) return NULL;
  /* chord roots (semitones above the tonic) and their qualities */
  static const int roots[4] = {0, 5, 7, 0};
  int base = 60 + tonic; /* around middle C */
  if (base > 65) base -= 12;
  size_t clen = (size_t)(chord_s * sr);
  for (size_t c = 0; c * clen < n; c++) {
    int r = roots[c % 4];
    int third = 4; /* major third */
    if (minor && (r == 0 || r == 5)) third = 3;
    int root = base + r;
    synth_note(y, n, c * clen, clen, sr, root, 0.15f);
    synth_note(y, n, c * clen, clen, sr, root + third, 0.12f);
    synth_note(y, n, c * clen, clen, sr, root + 7, 0.12f);
    synth_note(y, n, c * clen, clen, sr, root - 12, 0.15f);
  }
  *n_out = n;
  return y;
}

/* Music-like mix: the progression in A minor, drums at 120 BPM, and a
 * little broadband noise. */
static inline float *synth_music(double seconds, int sr, size_t *n_out) {
  size_t n1, n2;
  float *a = synth_progression(9, 1, seconds, 2.0, sr, &n1);
  float *b = synth_drums(120.0, seconds, sr, &n2);
  if (!a || !b) {
    free(a);
    free(b);
    return NULL;
  }
  synth_rng rng = {777};
  for (size_t i = 0; i < n1 && i < n2; i++) a[i] = 0.7f * a[i] + 0.5f * b[i] + 0.002f * synth_noise(&rng);
  free(b);
  *n_out = n1;
  return a;
}

#endif
