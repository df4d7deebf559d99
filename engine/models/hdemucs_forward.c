/* hdemucs_forward.c: one forward call of the HDemucs (v3 hybrid) graph, as
 * demucs/hdemucs.py HDemucs.forward computes it:
 *   - spectrogram branch: _spec (pad by 3/4 hop with reflection, or zeros
 *     for hybrid_old; STFT with centre reflection; keep frames [2, 2+le),
 *     drop the Nyquist bin), CaC channels, standardised per item;
 *   - time branch: the mix standardised per item;
 *   - encoders (frequency layers with the time layer beside them, the last
 *     frequency layer adding the "empty" time layer's conv output, then
 *     time-strided layers on the merged signal), frequency embedding after
 *     layer 0;
 *   - decoders from zeros, skips added; where the branches split the "empty"
 *     time decoder takes the frequency decoder's pre-transposed-conv tensor;
 *   - de-standardise, _ispec, sum of both branches.
 * Every tensor lives in the run's arena; only backend ops touch the data.
 *
 * Threading: uses only its dx_run. */
#include <stdio.h>

#include "hdemucs.h"

typedef struct {
  float *p;
  int c, f, t; /* [c][f][t]; f = 0 marks a [c][t] tensor */
} hd_t;

static size_t numel(const hd_t *x) { return (size_t)x->c * (x->f ? x->f : 1) * x->t; }

static dx_status observe(dx_run *r, const char *name, const hd_t *x) {
  size_t shape[3] = {(size_t)x->c, (size_t)x->f, (size_t)x->t};
  if (!x->f) {
    shape[1] = (size_t)x->t;
    return dx_run_observe(r, name, x->p, shape, 2);
  }
  return dx_run_observe(r, name, x->p, shape, 3);
}

/* torch F.gelu / GLU / GroupNorm on a whole [c][f*t] tensor. */
static dx_status gn(dx_run *r, const v3_wb *w, int groups, const hd_t *x) {
  return v3_group_norm(r, w, groups, x->p, x->c, (long long)(x->f ? x->f : 1) * x->t);
}

/* DConv over a [C][F][T] tensor with each frequency row as a batch item. */
static dx_status dconv_freq(const hd_layer *L, dx_run *r, hd_t *y) {
  if (y->f <= 1) return v3_dconv_forward(&L->dconv, r, y->p, 1, y->t);
  const size_t mark = dx_run_mark(r);
  float *tmp = dx_run_alloc(r, numel(y));
  if (!tmp) return DX_ERR_INTERNAL;
  const int sh1[3] = {y->c, y->f, y->t}, perm[3] = {1, 0, 2}, sh2[3] = {y->f, y->c, y->t};
  DX_TRY(DX_NN(r, permute, y->p, tmp, 3, sh1, perm));
  DX_TRY(v3_dconv_forward(&L->dconv, r, tmp, y->f, y->t));
  DX_TRY(DX_NN(r, permute, tmp, y->p, 3, sh2, perm));
  dx_run_release(r, mark);
  return DX_OK;
}

/* The rewrite conv (C -> 2C channels, 1+2*context wide), norm_b GroupNorm
 * and GLU of x [C][f][t] into out [C][f][t]; z is left on the run. */
static dx_status rewrite_glu(const hd_layer *L, dx_run *r, const hd_t *x, float *out) {
  const int C = x->c;
  hd_t z = *x;
  z.c = 2 * C;
  z.p = dx_run_alloc(r, numel(&z));
  if (!z.p) return DX_ERR_INTERNAL;
  const int kr = 1 + 2 * L->context;
  if (L->freq)
    DX_TRY(DX_NN(r, conv2d, x->p, dx_run_w(r, L->rewrite.w), dx_run_w(r, L->rewrite.b), z.p, 1, C, x->f, x->t, 2 * C,
                 kr, kr, 1, 1, L->context, L->context));
  else
    DX_TRY(DX_NN(r, conv1d, x->p, dx_run_w(r, L->rewrite.w), dx_run_w(r, L->rewrite.b), z.p, 1, C, x->t, 2 * C, kr, 1,
                 L->context, 1));
  DX_TRY(gn(r, &L->norm_b, L->groups, &z));
  return DX_NN(r, glu, z.p, out, 1, C, (long long)(x->f ? x->f : 1) * x->t);
}

/* HEncLayer.forward. out is allocated here (kept); inject may be NULL. */
static dx_status enc_forward(const hd_layer *L, dx_run *r, const hd_t *x, const hd_t *inject, hd_t *out) {
  hd_t y;
  if (L->freq) {
    const int fo = (x->f + 2 * L->pad - L->kernel) / L->stride + 1;
    y = (hd_t){NULL, L->chout, fo, x->t};
  } else {
    const int tp = (x->t + L->stride - 1) / L->stride * L->stride;
    y = (hd_t){NULL, L->chout, 0, (tp + 2 * L->pad - L->kernel) / L->stride + 1};
  }
  *out = y;
  out->p = dx_run_alloc(r, numel(out));
  if (!out->p) return DX_ERR_INTERNAL;
  const size_t mark = dx_run_mark(r);
  if (!L->empty) {
    y.p = dx_run_alloc(r, numel(&y));
    if (!y.p) return DX_ERR_INTERNAL;
  } else {
    y.p = out->p;
  }
  if (L->freq) {
    DX_TRY(DX_NN(r, conv2d, x->p, dx_run_w(r, L->conv.w), dx_run_w(r, L->conv.b), y.p, 1, L->chin, x->f, x->t,
                 L->chout, L->kernel, 1, L->stride, 1, L->pad, 0));
  } else {
    const int cin = x->c * (x->f ? x->f : 1);
    const float *xin = x->p;
    int tp = x->t;
    if (x->t % L->stride) {
      tp = (x->t + L->stride - 1) / L->stride * L->stride;
      float *xp = dx_run_alloc(r, (size_t)cin * tp);
      if (!xp) return DX_ERR_INTERNAL;
      DX_TRY(DX_NN(r, pad1d, x->p, xp, cin, x->t, 0, tp - x->t, DX_PAD_ZERO));
      xin = xp;
    }
    DX_TRY(DX_NN(r, conv1d, xin, dx_run_w(r, L->conv.w), dx_run_w(r, L->conv.b), y.p, 1, cin, tp, L->chout, L->kernel,
                 L->stride, L->pad, 1));
  }
  if (L->empty) {
    dx_run_release(r, mark);
    return DX_OK;
  }
  if (inject) {
    if (inject->t != y.t || numel(inject) != numel(&y))
      return dx_fail(r->err, DX_ERR_INTERNAL, "HDemucs: inject shape mismatch");
    DX_TRY(DX_NN(r, add, y.p, inject->p, y.p, (long long)numel(&y)));
  }
  DX_TRY(gn(r, &L->norm_a, L->groups, &y));
  DX_TRY(DX_NN(r, gelu, y.p, y.p, (long long)numel(&y)));
  if (L->has_dconv) DX_TRY(dconv_freq(L, r, &y));
  DX_TRY(rewrite_glu(L, r, &y, out->p));
  dx_run_release(r, mark);
  return DX_OK;
}

/* HDecLayer.forward: x (+ skip unless empty) -> out (allocated here) and pre
 * (the tensor before the transposed conv; allocated here, or x when empty).
 * x is modified (the skip is added in place). */
static dx_status dec_forward(const hd_layer *L, dx_run *r, hd_t *x, const hd_t *skip, int length, hd_t *out,
                             hd_t *pre) {
  const int fin = L->freq ? (x->f ? x->f : 1) : 0;
  hd_t y = {NULL, L->chin, fin, x->t};
  int full_h = 0, full_t = 0;
  if (L->freq) {
    full_h = (fin - 1) * L->stride + L->kernel;
    *out = (hd_t){NULL, L->chout, full_h - 2 * L->pad, x->t};
  } else {
    full_t = (x->t - 1) * L->stride + L->kernel;
    *out = (hd_t){NULL, L->chout, 0, length};
    if (L->pad + length > full_t) return dx_fail(r->err, DX_ERR_INTERNAL, "HDemucs: decoder length mismatch");
  }
  out->p = dx_run_alloc(r, numel(out));
  if (!out->p) return DX_ERR_INTERNAL;
  if (L->empty) {
    y.p = x->p;
  } else {
    y.p = dx_run_alloc(r, numel(&y));
    if (!y.p) return DX_ERR_INTERNAL;
  }
  const size_t mark = dx_run_mark(r);
  if (!L->empty) {
    DX_TRY(DX_NN(r, add, x->p, skip->p, x->p, (long long)numel(&y)));
    hd_t xs = y; /* x with the skip added, in y's shape */
    xs.p = x->p;
    DX_TRY(rewrite_glu(L, r, &xs, y.p));
    if (L->has_dconv) DX_TRY(dconv_freq(L, r, &y));
  }
  /* Transposed conv; GroupNorm sees the uncropped output, so crop afterwards when normalising. */
  if (L->freq) {
    if (L->groups) {
      hd_t full = {dx_run_alloc(r, (size_t)L->chout * full_h * y.t), L->chout, full_h, y.t};
      if (!full.p) return DX_ERR_INTERNAL;
      DX_TRY(DX_NN(r, conv_tr2d, y.p, dx_run_w(r, L->conv.w), dx_run_w(r, L->conv.b), full.p, 1, L->chin, fin, y.t,
                   L->chout, L->kernel, 1, L->stride, 1, 0, 0, full_h, y.t));
      DX_TRY(gn(r, &L->norm_a, L->groups, &full));
      DX_TRY(DX_NN(r, copy2d, full.p + (size_t)L->pad * y.t, (long long)full_h * y.t, out->p,
                   (long long)out->f * y.t, L->chout, (long long)out->f * y.t));
    } else {
      DX_TRY(DX_NN(r, conv_tr2d, y.p, dx_run_w(r, L->conv.w), dx_run_w(r, L->conv.b), out->p, 1, L->chin, fin, y.t,
                   L->chout, L->kernel, 1, L->stride, 1, L->pad, 0, out->f, y.t));
    }
  } else {
    if (L->groups) {
      hd_t full = {dx_run_alloc(r, (size_t)L->chout * full_t), L->chout, 0, full_t};
      if (!full.p) return DX_ERR_INTERNAL;
      DX_TRY(DX_NN(r, conv_tr1d, y.p, dx_run_w(r, L->conv.w), dx_run_w(r, L->conv.b), full.p, 1, L->chin, y.t,
                   L->chout, L->kernel, L->stride, 0, full_t));
      DX_TRY(gn(r, &L->norm_a, L->groups, &full));
      DX_TRY(DX_NN(r, copy2d, full.p + L->pad, full_t, out->p, length, L->chout, length));
    } else {
      DX_TRY(DX_NN(r, conv_tr1d, y.p, dx_run_w(r, L->conv.w), dx_run_w(r, L->conv.b), out->p, 1, L->chin, y.t,
                   L->chout, L->kernel, L->stride, L->pad, length));
    }
  }
  if (!L->last) DX_TRY(DX_NN(r, gelu, out->p, out->p, (long long)numel(out)));
  dx_run_release(r, mark);
  *pre = y;
  return DX_OK;
}

/* _spec + CaC: in [ca][length] -> z [ca*2][nfft/2][le]. */
static dx_status spec(const hdemucs *m, dx_run *r, const float *in, int length, hd_t *z) {
  const int ca = m->audio_channels, hop = m->hop, nfft = m->nfft;
  const int le = (length + hop - 1) / hop, pad = hop / 2 * 3;
  int pl = pad, pr = pad + le * hop - length;
  const int lp = length + pl + pr;
  *z = (hd_t){dx_run_alloc(r, (size_t)ca * 2 * (nfft / 2) * le), ca * 2, nfft / 2, le};
  if (!z->p) return DX_ERR_INTERNAL;
  const size_t mark = dx_run_mark(r);
  float *xp = dx_run_alloc(r, (size_t)ca * lp);
  float *xc = dx_run_alloc(r, (size_t)ca * (lp + nfft));
  if (!xp || !xc) return DX_ERR_INTERNAL;
  if (m->hybrid_old) {
    DX_TRY(DX_NN(r, pad1d, in, xp, ca, length, pl, pr, DX_PAD_ZERO));
  } else {
    /* demucs pad1d: reflection of a signal shorter than the pad first extends it with zeros. */
    const int max_pad = pl > pr ? pl : pr;
    if (length <= max_pad) {
      const int extra = max_pad - length + 1;
      const int er = pr < extra ? pr : extra, el = extra - er;
      float *xe = dx_run_alloc(r, (size_t)ca * (length + extra));
      if (!xe) return DX_ERR_INTERNAL;
      DX_TRY(DX_NN(r, pad1d, in, xe, ca, length, el, er, DX_PAD_ZERO));
      DX_TRY(DX_NN(r, pad1d, xe, xp, ca, length + extra, pl - el, pr - er, DX_PAD_REFLECT));
    } else {
      DX_TRY(DX_NN(r, pad1d, in, xp, ca, length, pl, pr, DX_PAD_REFLECT));
    }
  }
  DX_TRY(DX_NN(r, pad1d, xp, xc, ca, lp, nfft / 2, nfft / 2, DX_PAD_REFLECT));
  DX_TRY(DX_NN(r, stft, xc, z->p, ca, (long long)lp + nfft, nfft, hop, 2, le, nfft / 2));
  dx_run_release(r, mark);
  return DX_OK;
}

dx_status hdemucs_forward(const hdemucs *m, dx_run *r, const float *in, size_t length_sz, float *out) {
  const int length = (int)length_sz, ca = m->audio_channels, S = m->sources;
  if (length_sz < 1 || length_sz > (size_t)1 << 30) return dx_fail(r->err, DX_ERR_INVALID, "bad length");
  DX_TRY(v3_check_ops(r));
  hd_t saved[HD_MAX_DEPTH], saved_t[HD_MAX_DEPTH];
  int lengths[HD_MAX_DEPTH], lengths_t[HD_MAX_DEPTH];
  int n_saved_t = 0;
  char name[64];

  hd_t x;
  DX_TRY(spec(m, r, in, length, &x));
  const int fq = x.f, tq = x.t;
  float *stats = dx_run_alloc(r, 4); /* mean/std of the frequency branch, then of the time branch */
  hd_t xt = {dx_run_alloc(r, (size_t)ca * length), ca, 0, length};
  if (!stats || !xt.p) return DX_ERR_INTERNAL;
  DX_TRY(DX_NN(r, mean_std, x.p, stats, 1, (long long)numel(&x)));
  DX_TRY(DX_NN(r, standardize, x.p, x.p, stats, 1, (long long)numel(&x), 1e-5f));
  DX_TRY(DX_NN(r, mean_std, in, stats + 2, 1, (long long)ca * length));
  DX_TRY(DX_NN(r, standardize, in, xt.p, stats + 2, 1, (long long)ca * length, 1e-5f));

  for (int idx = 0; idx < m->depth; idx++) {
    lengths[idx] = x.t;
    hd_t inject = {0}, *inj = NULL;
    if (idx < m->n_t) {
      lengths_t[idx] = xt.t;
      hd_t yt;
      DX_TRY(enc_forward(&m->tenc[idx], r, &xt, NULL, &yt));
      snprintf(name, sizeof name, "tencoder.%d", idx);
      DX_TRY(observe(r, name, &yt));
      if (!m->tenc[idx].empty) {
        saved_t[n_saved_t++] = yt;
        xt = yt;
      } else {
        inject = yt;
        inj = &inject;
      }
    }
    hd_t y;
    DX_TRY(enc_forward(&m->enc[idx], r, &x, inj, &y));
    snprintf(name, sizeof name, "encoder.%d", idx);
    DX_TRY(observe(r, name, &y));
    if (idx == 0 && m->freq_emb >= 0) {
      if (y.f != m->emb_freqs || y.c != m->emb_channels)
        return dx_fail(r->err, DX_ERR_INTERNAL, "HDemucs: frequency embedding shape mismatch");
      DX_TRY(DX_NN(r, channel_affine, y.p, y.p, 1, y.c * y.f, y.t, NULL, dx_run_w(r, m->freq_emb)));
    }
    saved[idx] = y;
    x = y;
  }

  /* Decoders start from zeros: the first one's input is 0 + skip. */
  hd_t cur = x;
  cur.p = dx_run_alloc(r, numel(&x));
  if (!cur.p) return DX_ERR_INTERNAL;
  DX_TRY(DX_BE(r, memset0, cur.p, numel(&x) * sizeof(float)));
  hd_t curt = {0};
  const int offset = m->depth - m->n_t;
  for (int j = 0; j < m->depth; j++) {
    const int idx = m->depth - 1 - j;
    hd_t y, pre;
    DX_TRY(dec_forward(&m->dec[j], r, &cur, &saved[idx], lengths[idx], &y, &pre));
    snprintf(name, sizeof name, "decoder.%d.0", j);
    DX_TRY(observe(r, name, &y));
    snprintf(name, sizeof name, "decoder.%d.1", j);
    DX_TRY(observe(r, name, &pre));
    cur = y;
    if (j >= offset) {
      const int jt = j - offset, it = m->n_t - 1 - jt;
      const hd_layer *td = &m->tdec[jt];
      hd_t yt, pret;
      if (td->empty) {
        if (pre.f > 1) return dx_fail(r->err, DX_ERR_INTERNAL, "HDemucs: merged layer has %d rows", pre.f);
        hd_t p = {pre.p, pre.c, 0, pre.t};
        DX_TRY(dec_forward(td, r, &p, NULL, lengths_t[it], &yt, &pret));
      } else {
        DX_TRY(dec_forward(td, r, &curt, &saved_t[--n_saved_t], lengths_t[it], &yt, &pret));
      }
      snprintf(name, sizeof name, "tdecoder.%d.0", jt);
      DX_TRY(observe(r, name, &yt));
      snprintf(name, sizeof name, "tdecoder.%d.1", jt);
      DX_TRY(observe(r, name, &pret));
      curt = yt;
    }
  }
  if (cur.c != S * ca * 2 || cur.f != fq || cur.t != tq || curt.c != S * ca || curt.t != length)
    return dx_fail(r->err, DX_ERR_INTERNAL, "HDemucs: output shape mismatch");

  /* Frequency branch back to audio; time branch de-standardised; sum. */
  DX_TRY(DX_NN(r, destandardize, cur.p, cur.p, stats, 1, (long long)numel(&cur)));
  DX_TRY(DX_NN(r, destandardize, curt.p, curt.p, stats + 2, 1, (long long)numel(&curt)));
  float *xf = dx_run_alloc(r, (size_t)S * ca * length);
  if (!xf) return DX_ERR_INTERNAL;
  const long long out0 = m->nfft / 2 + (m->hybrid_old ? 0 : m->hop / 2 * 3);
  DX_TRY(DX_NN(r, istft, cur.p, xf, S * ca, m->nfft, m->hop, fq, tq, 2, tq + 4, out0, (long long)length));
  DX_TRY(DX_NN(r, add, curt.p, xf, out, (long long)S * ca * length));
  return DX_OK;
}
