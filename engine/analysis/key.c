/* key.c: musical key from the mean chroma vector.
 *
 * The 12 chroma means (C first) are correlated (Pearson) with the 24
 * rotations of Temperley's key profiles (Temperley 2007, from the
 * Kostka-Payne corpus; the Krumhansl-Schmuckler method with these weights);
 * the best rotation is the key. Temperley's minor profile separates the
 * minor from the major third far more than Krumhansl-Kessler's, which on
 * harmonic-rich tones (the fifth partial of the root is a major third)
 * mistook minor keys for their parallel major. Confidence is the winning
 * correlation scaled by its margin over the runner-up:
 * r_best * min(1, (r_best - r_second) / 0.1), clipped to 0..1, so a clear
 * winner with a good fit reads near 1 and a near-tie near 0.
 * Camelot codes: C major = 8B, each fifth up adds 1 (mod 12); a minor key
 * shares its relative major's number with 'A'.
 * Threading: pure functions on constant tables. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "dx_analysis.h"

static const double major_profile[12] = {0.748, 0.060, 0.488, 0.082, 0.670, 0.460, 0.096, 0.715, 0.104, 0.366, 0.057, 0.400};
static const double minor_profile[12] = {0.712, 0.084, 0.474, 0.618, 0.049, 0.460, 0.105, 0.747, 0.404, 0.067, 0.133, 0.330};

static const char *const major_names[12] = {"C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"};
static const char *const minor_names[12] = {"C", "C#", "D", "Eb", "E", "F", "F#", "G", "G#", "A", "Bb", "B"};

const char *dx_key_name(int k, char buf[16]) {
  if (k < 0 || k >= 24) {
    buf[0] = 0;
    return buf;
  }
  snprintf(buf, 16, "%s %s", k < 12 ? major_names[k] : minor_names[k - 12], k < 12 ? "major" : "minor");
  return buf;
}

const char *dx_key_camelot(int k, char buf[4]) {
  if (k < 0 || k >= 24) {
    buf[0] = 0;
    return buf;
  }
  int pc = k < 12 ? k : (k - 12 + 3) % 12; /* minor: its relative major */
  int num = ((7 * pc) % 12 + 7) % 12 + 1;
  snprintf(buf, 4, "%d%c", num, k < 12 ? 'B' : 'A');
  return buf;
}

static double pearson(const double *x, const double *prof, int rot) {
  double mx = 0, my = 0;
  for (int i = 0; i < 12; i++) {
    mx += x[i];
    my += prof[i];
  }
  mx /= 12;
  my /= 12;
  double sxy = 0, sxx = 0, syy = 0;
  for (int i = 0; i < 12; i++) {
    double a = x[(i + rot) % 12] - mx, b = prof[i] - my;
    sxy += a * b;
    sxx += a * a;
    syy += b * b;
  }
  return sxx > 0 && syy > 0 ? sxy / sqrt(sxx * syy) : 0;
}

void dx_key_detect(const double chroma[12], dx_analysis_result *r) {
  double best = -2, second = -2;
  int bk = -1;
  for (int k = 0; k < 24; k++) {
    double c = pearson(chroma, k < 12 ? major_profile : minor_profile, k % 12);
    if (c > best) {
      second = best;
      best = c;
      bk = k;
    } else if (c > second)
      second = c;
  }
  r->key_index = bk;
  dx_key_name(bk, r->key);
  dx_key_camelot(bk, r->camelot);
  double margin = fmin(1.0, (best - second) / 0.1);
  r->key_confidence = bk < 0 ? 0 : fmax(0.0, fmin(1.0, best * margin));
}
