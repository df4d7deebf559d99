/* nn_local_attn.c: CPU reference of LocalState, the local attention inside
 * the Demucs v3 DConv branches (attention from data only, no positional
 * embedding, a learned per-query decay penalty on |t - s|, the query's own
 * position masked out).
 *
 * For x [B][C][T], H heads of D = C/H channels and K decay terms:
 *   q, k, v = 1x1 convs of x;  a = sigmoid(query_decay(x)) / 2  [H][K][T]
 *   dots[t][s] = k[:,t].q[:,s] / sqrt(D) - |t-s| * sum_f (f+1)/sqrt(K) a[f][s]
 *   dots[s][s] = -100;  w = softmax over keys t
 *   y = x + proj(sum_t w[t][s] v[:,t])
 * Queries are taken in blocks so scratch stays O(T * block), not O(T^2).
 *
 * Threading: no shared state; scratch is allocated per call. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dx_nn_ops.h"
#include "nn_cpu.h"
#include "nn_demucs3_cpu.h"

#define LA_BLOCK 128

static inline float sigmoidf_la(float x) { return 1.0f / (1.0f + expf(-x)); }

/* out[o][t] = b[o] + sum_i w[o][i] x[i][t] (a 1x1 convolution). */
static void conv1x1(const float *w, const float *b, const float *x, float *out, int cout, int cin, int T) {
  for (int o = 0; o < cout; o++)
    for (int t = 0; t < T; t++) out[(size_t)o * T + t] = b ? b[o] : 0.0f;
  dx_cpu_sgemm(0, 0, cout, T, cin, 1.0f, w, cin, x, T, 1.0f, out, T);
}

dx_status dx_cpu_nn_local_attn(dx_backend *be, const float *x, float *y, int batch, int channels, int length,
                               int heads, int ndecay, const dx_local_attn_w *w) {
  (void)be;
  if (batch <= 0 || channels <= 0 || length <= 0 || heads <= 0 || channels % heads || ndecay < 0 || !w)
    return DX_ERR_INVALID;
  const int C = channels, T = length, D = C / heads, KD = heads * ndecay;
  const size_t CT = (size_t)C * T;
  float *q = malloc(CT * sizeof *q), *k = malloc(CT * sizeof *k), *v = malloc(CT * sizeof *v);
  float *r = malloc(CT * sizeof *r), *a = malloc(((size_t)KD + 1) * T * sizeof *a);
  float *dots = malloc((size_t)LA_BLOCK * T * sizeof *dots);
  float *rate = malloc((size_t)T * sizeof *rate);
  if (!q || !k || !v || !r || !a || !dots || !rate) {
    free(q), free(k), free(v), free(r), free(a), free(dots), free(rate);
    return DX_ERR_NOMEM;
  }
  const float scale = 1.0f / sqrtf((float)D);
  for (int bi = 0; bi < batch; bi++) {
    const float *xb = x + (size_t)bi * CT;
    float *yb = y + (size_t)bi * CT;
    conv1x1(w->query_w, w->query_b, xb, q, C, C, T);
    conv1x1(w->key_w, w->key_b, xb, k, C, C, T);
    conv1x1(w->content_w, w->content_b, xb, v, C, C, T);
    if (ndecay) conv1x1(w->decay_w, w->decay_b, xb, a, KD, C, T);
    for (int h = 0; h < heads; h++) {
      const float *qh = q + (size_t)h * D * T, *kh = k + (size_t)h * D * T, *vh = v + (size_t)h * D * T;
      float *rh = r + (size_t)h * D * T;
      /* Decay rate per query s: sum_f (f+1)/sqrt(K) * sigmoid(a[h][f][s]) / 2. */
      for (int s = 0; s < T; s++) {
        float acc = 0.0f;
        for (int f = 0; f < ndecay; f++)
          acc += (float)(f + 1) / sqrtf((float)ndecay) * (sigmoidf_la(a[((size_t)h * ndecay + f) * T + s]) * 0.5f);
        rate[s] = acc;
      }
      for (int s0 = 0; s0 < T; s0 += LA_BLOCK) {
        const int ns = T - s0 < LA_BLOCK ? T - s0 : LA_BLOCK;
        /* dots[s][t] = scale * sum_c q[c][s0+s] k[c][t] */
        dx_cpu_sgemm(1, 0, ns, T, D, scale, qh + s0, T, kh, T, 0.0f, dots, T);
        for (int si = 0; si < ns; si++) {
          float *row = dots + (size_t)si * T;
          const int s = s0 + si;
          const float rs = rate[s];
          float mx = -INFINITY;
          for (int t = 0; t < T; t++) {
            row[t] = t == s ? -100.0f : row[t] - (float)abs(t - s) * rs;
            if (row[t] > mx) mx = row[t];
          }
          float sum = 0.0f;
          for (int t = 0; t < T; t++) {
            row[t] = expf(row[t] - mx);
            sum += row[t];
          }
          const float inv = 1.0f / sum;
          for (int t = 0; t < T; t++) row[t] *= inv;
        }
        /* r[c][s0+s] = sum_t v[c][t] w[s][t] */
        dx_cpu_sgemm(0, 1, D, ns, T, 1.0f, vh, T, dots, T, 0.0f, rh + s0, T);
      }
    }
    /* y = x + proj(r) */
    conv1x1(w->proj_w, w->proj_b, r, q, C, C, T);
    for (size_t i = 0; i < CT; i++) yb[i] = xb[i] + q[i];
  }
  free(q), free(k), free(v), free(r), free(a), free(dots), free(rate);
  return DX_OK;
}
