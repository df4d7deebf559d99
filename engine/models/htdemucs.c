/* htdemucs.c: the HTDemucs (v4) graph: constructor kwargs (defaults of the
 * official constructor), building the layers from the checkpoint, and the
 * whole forward pass (SPEC.md section 4): zero-pad to the training length,
 * spectrogram + normalisation, the two encoder branches, the bottleneck
 * projections and cross transformer, the two decoder branches, inverse
 * spectrogram, denormalisation, sum of branches, crop.
 * Threading: built once, read-only; forward per call. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dx_spec.h"
#include "htdemucs_impl.h"

static void ht_free(void *g) { free(g); }

static size_t ht_valid_length(const void *g, size_t length) {
  const htdemucs *h = g;
  return length <= (size_t)h->training_length ? (size_t)h->training_length : 0;
}

/* kwargs helpers: read with a default, refuse values the graph does not implement */
#define KW_INT(var, name, def)                                                                                      \
  do {                                                                                                              \
    long long v_;                                                                                                   \
    DX_TRY(dx_checkpoint_kwarg_int(ck, name, def, &v_, err));                                                       \
    if (v_ < -1000000000LL || v_ > 1000000000LL) return dx_fail(err, DX_ERR_MODEL, "kwarg %s out of range", name); \
    var = (int)v_;                                                                                                  \
  } while (0)
#define KW_DBL(var, name, def) DX_TRY(dx_checkpoint_kwarg_double(ck, name, def, &(var), err))
#define KW_BOOL(var, name, def) DX_TRY(dx_checkpoint_kwarg_bool(ck, name, def, &(var), err))

static int kw_is_none_or_empty(const dx_checkpoint *ck, const char *name) {
  const dx_pyval *v = dx_checkpoint_kwarg(ck, name);
  return !v || v->type == DX_PY_NONE || ((v->type == DX_PY_LIST || v->type == DX_PY_TUPLE) && v->n == 0);
}

static dx_status read_sources(const dx_checkpoint *ck, dx_model_info *info, dx_errbuf *err) {
  const dx_pyval *s = dx_checkpoint_kwarg(ck, "sources");
  if (!s || (s->type != DX_PY_LIST && s->type != DX_PY_TUPLE) || s->n == 0)
    return dx_fail(err, DX_ERR_MODEL, "the checkpoint has no list of sources");
  if (s->n > DX_MODEL_MAX_SOURCES) return dx_fail(err, DX_ERR_UNSUPPORTED, "%zu sources", s->n);
  for (size_t i = 0; i < s->n; i++) {
    if (s->items[i]->type != DX_PY_STR || s->items[i]->n == 0 || s->items[i]->n >= sizeof info->sources[0])
      return dx_fail(err, DX_ERR_MODEL, "source %zu is not a short name", i);
    memcpy(info->sources[i], s->items[i]->s, s->items[i]->n + 1);
  }
  info->n_sources = (int)s->n;
  return DX_OK;
}

/* Training length int(segment * samplerate), exact for Fraction segments. */
static dx_status read_segment(const dx_checkpoint *ck, int samplerate, double *seconds, long long *len,
                              dx_errbuf *err) {
  const dx_pyval *v = dx_checkpoint_kwarg(ck, "segment");
  if (!v) {
    *seconds = 10;
    *len = 10LL * samplerate;
  } else if (v->type == DX_PY_FRACTION) {
    if (v->num <= 0 || v->num > 1000000 || v->den > 1000000) return dx_fail(err, DX_ERR_MODEL, "bad segment");
    *seconds = (double)v->num / (double)v->den;
    *len = v->num * samplerate / v->den;
  } else {
    DX_TRY(dx_checkpoint_kwarg_double(ck, "segment", 10, seconds, err));
    if (!(*seconds > 0 && *seconds < 3600)) return dx_fail(err, DX_ERR_MODEL, "bad segment");
    *len = (long long)(*seconds * samplerate);
  }
  return DX_OK;
}

typedef dx_status (*layer_build_fn)(ht_layer *l, const dx_checkpoint *ck, dx_params *ps, const char *prefix,
                                    dx_errbuf *err);

/* Layer <module>.<index> (encoder or decoder, by build) and, when with_dconv,
 * its DConv <module>.<index>.dconv of `channels` channels. */
static dx_status build_layer(layer_build_fn build, ht_layer *l, const dx_checkpoint *ck, dx_params *ps,
                             const char *module, int index, int with_dconv, int channels, int dconv_depth,
                             double dconv_comp, dx_errbuf *err) {
  char pre[64];
  snprintf(pre, sizeof pre, "%s.%d", module, index);
  DX_TRY(build(l, ck, ps, pre, err));
  if (!with_dconv) return DX_OK;
  snprintf(pre, sizeof pre, "%s.%d.dconv", module, index);
  return ht_dconv_build(&l->dconv, ck, ps, pre, channels, dconv_depth, dconv_comp, err);
}

static dx_status ht_build(const dx_checkpoint *ck, dx_params *ps, dx_model_info *info, void **graph, dx_errbuf *err) {
  htdemucs *h = calloc(1, sizeof *h);
  if (!h) return DX_ERR_NOMEM;
  dx_status st = DX_OK;
  *graph = h; /* freed by the caller (dx_model_free) on error too */
  int channels_time = 0, cac, rewrite, context, context_enc, norm_starts, norm_groups, dconv_mode, dconv_depth;
  int t_layers, t_heads, t_norm_in, t_norm_in_group, t_group_norm, t_norm_first, t_norm_out, t_layer_scale, t_gelu;
  int t_sparse_self, t_sparse_cross, t_cross_first, use_train_segment, samplerate, t_shift;
  double freq_emb, emb_scale, dconv_comp, t_hidden_scale, t_weight_pos, t_max_period;
  const char *t_emb;

  DX_TRY(read_sources(ck, info, err));
  h->sources = info->n_sources;
  KW_INT(h->audio_channels, "audio_channels", 2);
  KW_INT(h->channels, "channels", 48);
  if (!kw_is_none_or_empty(ck, "channels_time")) KW_INT(channels_time, "channels_time", 0);
  KW_INT(h->growth, "growth", 2);
  KW_INT(h->nfft, "nfft", 4096);
  KW_BOOL(cac, "cac", 1);
  KW_INT(h->depth, "depth", 4);
  KW_BOOL(rewrite, "rewrite", 1);
  KW_DBL(freq_emb, "freq_emb", 0.2);
  KW_DBL(emb_scale, "emb_scale", 10);
  KW_INT(h->kernel, "kernel_size", 8);
  KW_INT(h->stride, "stride", 4);
  KW_INT(context, "context", 1);
  KW_INT(context_enc, "context_enc", 0);
  KW_INT(norm_starts, "norm_starts", 4);
  KW_INT(norm_groups, "norm_groups", 4);
  KW_INT(dconv_mode, "dconv_mode", 1);
  KW_INT(dconv_depth, "dconv_depth", 2);
  KW_DBL(dconv_comp, "dconv_comp", 8);
  KW_INT(h->bottom_channels, "bottom_channels", 0);
  KW_INT(t_layers, "t_layers", 5);
  DX_TRY(dx_checkpoint_kwarg_str(ck, "t_emb", "sin", &t_emb, err));
  KW_DBL(t_hidden_scale, "t_hidden_scale", 4.0);
  KW_INT(t_heads, "t_heads", 8);
  KW_BOOL(t_norm_in, "t_norm_in", 1);
  KW_BOOL(t_norm_in_group, "t_norm_in_group", 0);
  KW_BOOL(t_group_norm, "t_group_norm", 0);
  KW_BOOL(t_norm_first, "t_norm_first", 1);
  KW_BOOL(t_norm_out, "t_norm_out", 1);
  KW_DBL(t_max_period, "t_max_period", 10000.0);
  KW_BOOL(t_layer_scale, "t_layer_scale", 1);
  KW_BOOL(t_gelu, "t_gelu", 1);
  KW_DBL(t_weight_pos, "t_weight_pos_embed", 1.0);
  KW_INT(t_shift, "t_sin_random_shift", 0);
  KW_BOOL(t_sparse_self, "t_sparse_self_attn", 0);
  KW_BOOL(t_sparse_cross, "t_sparse_cross_attn", 0);
  KW_BOOL(t_cross_first, "t_cross_first", 0);
  KW_INT(samplerate, "samplerate", 44100);
  KW_BOOL(use_train_segment, "use_train_segment", 1);

  /* what this graph implements (the released configurations and their tiny variants) */
  if (!cac) return dx_fail(err, DX_ERR_UNSUPPORTED, "HTDemucs without complex-as-channels");
  if (!kw_is_none_or_empty(ck, "multi_freqs")) return dx_fail(err, DX_ERR_UNSUPPORTED, "HTDemucs with multi_freqs");
  if (channels_time && channels_time != h->channels) return dx_fail(err, DX_ERR_UNSUPPORTED, "HTDemucs with channels_time");
  if (!t_emb || strcmp(t_emb, "sin")) return dx_fail(err, DX_ERR_UNSUPPORTED, "transformer embedding %s", t_emb ? t_emb : "None");
  if (!t_norm_in || t_norm_in_group || t_group_norm || t_sparse_self || t_sparse_cross || !t_gelu || t_shift)
    return dx_fail(err, DX_ERR_UNSUPPORTED, "transformer options other than the released ones");
  if (t_max_period != 10000.0) return dx_fail(err, DX_ERR_UNSUPPORTED, "t_max_period %g", t_max_period);
  if (!use_train_segment) return dx_fail(err, DX_ERR_UNSUPPORTED, "HTDemucs with use_train_segment off");
  if (h->audio_channels < 1 || h->audio_channels > 8 || h->channels < 1 || h->growth < 1 || h->depth < 1 ||
      h->depth > HT_MAX_DEPTH || h->nfft < 16 || h->nfft > 65536 || (h->nfft & (h->nfft - 1)) || h->kernel < 1 ||
      h->stride < 1 || context < 0 || context_enc < 0 || norm_groups < 1 || dconv_depth < -HT_MAX_DCONV ||
      dconv_depth > HT_MAX_DCONV || !(dconv_comp > 0) || t_layers < 0 || t_heads < 1 || h->bottom_channels < 0 ||
      samplerate < 1000 || samplerate > 400000)
    return dx_fail(err, DX_ERR_MODEL, "HTDemucs kwargs out of range");
  info->audio_channels = h->audio_channels;
  info->samplerate = samplerate;
  DX_TRY(read_segment(ck, samplerate, &info->segment, &h->training_length, err));
  if (h->training_length < h->nfft || h->training_length > 100000000)
    return dx_fail(err, DX_ERR_MODEL, "training length %lld", h->training_length);

  /* layers, replaying the constructor */
  int S = h->sources, A = h->audio_channels;
  int chin = A, chin_z = 2 * A, chout = h->channels, chout_z = h->channels, freqs = h->nfft / 2;
  int pad = h->kernel / 4;
  h->frames = (int)dx_spec_frames(h->training_length, h->nfft);
  h->freqs[0] = freqs;
  h->tlen[0] = h->training_length;
  h->fch[0] = chin_z;
  for (int i = 0; i < h->depth; i++) {
    if (freqs <= h->kernel)
      return dx_fail(err, DX_ERR_UNSUPPORTED, "HTDemucs whose branches merge (depth %d, nfft %d)", h->depth, h->nfft);
    int norm = i >= norm_starts;
    ht_layer *e = &h->enc[i], *te = &h->tenc[i];
    int dj = h->depth - 1 - i; /* decoder module index of this level */
    ht_layer *d = &h->dec[dj], *td = &h->tdec[dj];
    *e = (ht_layer){.freq = 1, .chin = chin_z, .chout = chout_z, .kernel = h->kernel, .stride = h->stride,
                    .pad = pad, .norm = norm, .groups = norm_groups, .rewrite = rewrite, .context = context_enc};
    *te = *e;
    te->freq = 0;
    te->chin = chin;
    te->chout = chout;
    int dchin = i == 0 ? 2 * A * S : chin_z, dchin_t = i == 0 ? A * S : chin;
    *d = (ht_layer){.freq = 1, .chin = chout_z, .chout = dchin, .kernel = h->kernel, .stride = h->stride, .pad = pad,
                    .norm = norm, .groups = norm_groups, .rewrite = rewrite, .context = context, .last = i == 0};
    *td = *d;
    td->freq = 0;
    td->chin = chout;
    td->chout = dchin_t;
    DX_TRY(build_layer(ht_enc_build, e, ck, ps, "encoder", i, dconv_mode & 1, chout_z, dconv_depth, dconv_comp, err));
    DX_TRY(build_layer(ht_enc_build, te, ck, ps, "tencoder", i, dconv_mode & 1, chout, dconv_depth, dconv_comp, err));
    DX_TRY(build_layer(ht_dec_build, d, ck, ps, "decoder", dj, dconv_mode & 2, chout_z, dconv_depth, dconv_comp, err));
    DX_TRY(build_layer(ht_dec_build, td, ck, ps, "tdecoder", dj, dconv_mode & 2, chout, dconv_depth, dconv_comp, err));
    /* shapes entering the next level */
    int fo = (freqs + 2 * pad - h->kernel) / h->stride + 1;
    long long lp = (h->tlen[i] + h->stride - 1) / h->stride * h->stride;
    long long lo = (lp + 2 * pad - h->kernel) / h->stride + 1;
    /* the decoders must give back exactly what entered the encoders */
    if (fo < 1 || lo < 1 || (long long)(fo - 1) * h->stride + h->kernel - 2 * pad != freqs ||
        (lo - 1) * h->stride + h->kernel - pad < h->tlen[i])
      return dx_fail(err, DX_ERR_UNSUPPORTED, "HTDemucs shapes that do not invert (kernel %d, stride %d)", h->kernel,
                     h->stride);
    chin = chout;
    chin_z = chout_z;
    chout *= h->growth;
    chout_z *= h->growth;
    freqs = fo;
    h->freqs[i + 1] = fo;
    h->tlen[i + 1] = lo;
    h->fch[i + 1] = chin_z;
    if (i == 0) {
      h->freq_emb = -1;
      if (freq_emb != 0) {
        const int64_t shp[2] = {freqs, chin_z};
        const dx_ckpt_tensor *t = dx_checkpoint_expect(ck, "freq_emb.embedding.weight", 2, shp, &st, err);
        if (!t) return st;
        float *e2 = malloc(sizeof(float) * (size_t)freqs * chin_z);
        if (!e2) return DX_ERR_NOMEM;
        /* x[c][f][t] += freq_emb * (scale * W[f][c]), in float32 as the reference does */
        for (int c = 0; c < chin_z; c++)
          for (int f = 0; f < freqs; f++)
            e2[(size_t)c * freqs + f] = (float)freq_emb * (t->data[(size_t)f * chin_z + c] * (float)emb_scale);
        h->freq_emb = dx_params_add(ps, e2, (size_t)freqs * chin_z, &st);
        free(e2);
        if (st) return st;
      }
    }
  }
  int tch = h->fch[h->depth];
  h->up_w = h->up_b = h->down_w = h->down_b = h->up_t_w = h->up_t_b = h->down_t_w = h->down_t_b = -1;
  h->has_transformer = t_layers > 0;
  if (h->has_transformer) {
    int dim = tch;
    if (h->bottom_channels) {
      int B = h->bottom_channels;
      const int64_t su[3] = {B, tch, 1}, sd[3] = {tch, B, 1}, sb[1] = {B}, sbd[1] = {tch};
      h->up_w = dx_params_take(ps, ck, "channel_upsampler.weight", 3, su, &st, err); if (st) return st;
      h->up_b = dx_params_take(ps, ck, "channel_upsampler.bias", 1, sb, &st, err); if (st) return st;
      h->down_w = dx_params_take(ps, ck, "channel_downsampler.weight", 3, sd, &st, err); if (st) return st;
      h->down_b = dx_params_take(ps, ck, "channel_downsampler.bias", 1, sbd, &st, err); if (st) return st;
      h->up_t_w = dx_params_take(ps, ck, "channel_upsampler_t.weight", 3, su, &st, err); if (st) return st;
      h->up_t_b = dx_params_take(ps, ck, "channel_upsampler_t.bias", 1, sb, &st, err); if (st) return st;
      h->down_t_w = dx_params_take(ps, ck, "channel_downsampler_t.weight", 3, sd, &st, err); if (st) return st;
      h->down_t_b = dx_params_take(ps, ck, "channel_downsampler_t.bias", 1, sbd, &st, err); if (st) return st;
      dim = B;
    }
    ht_transformer *t = &h->tr;
    t->norm_first = t_norm_first;
    t->norm_out = t_norm_out;
    t->layer_scale = t_layer_scale;
    t->gelu = t_gelu;
    t->weight_pos = (float)t_weight_pos;
    for (int i = 0; i < t_layers && i < HT_MAX_TLAYERS; i++) t->f[i].cross = t->t[i].cross = (i % 2) != (t_cross_first ? 1 : 0);
    DX_TRY(ht_transformer_build(t, ck, ps, dim, t_heads, t_layers, t_hidden_scale, h->freqs[h->depth], h->frames,
                                (int)h->tlen[h->depth], err));
  }
  return DX_OK;
}

static dx_status observe_ct(dx_run *r, const char *name, const float *p, size_t c, size_t a, size_t b) {
  size_t shp[3] = {c, a, b};
  return dx_run_observe(r, name, p, shp, b ? 3 : 2);
}

static dx_status ht_forward(const void *g, dx_run *r, const float *in, size_t length, float *out) {
  const htdemucs *h = g;
  int A = h->audio_channels, S = h->sources, T = h->frames, nfft = h->nfft;
  long long L = h->training_length;
  if ((long long)length > L)
    return dx_fail(r->err, DX_ERR_INVALID, "HTDemucs runs at most %lld samples per call, got %zu", L, length);
  char name[48];
  float *mix = dx_run_alloc(r, (size_t)A * L);
  float *stats = dx_run_alloc(r, 4);
  float *x = dx_run_alloc(r, (size_t)A * 2 * (nfft / 2) * T);
  float *xt = dx_run_alloc(r, (size_t)A * L);
  if (!mix || !stats || !x || !xt) return DX_ERR_INTERNAL;
  DX_TRY(DX_NN(r, pad1d, in, mix, A, (int)length, 0, (int)(L - (long long)length), DX_PAD_ZERO));
  DX_TRY(dx_spec_forward(r, mix, A, L, nfft, x));
  long long nx = (long long)A * 2 * (nfft / 2) * T;
  DX_TRY(DX_NN(r, mean_std, x, stats, 1, nx));
  DX_TRY(DX_NN(r, standardize, x, x, stats, 1, nx, 1e-5f));
  DX_TRY(DX_NN(r, mean_std, mix, stats + 2, 1, (long long)A * L));
  DX_TRY(DX_NN(r, standardize, mix, xt, stats + 2, 1, (long long)A * L, 1e-5f));

  const float *skip[HT_MAX_DEPTH], *skip_t[HT_MAX_DEPTH];
  for (int i = 0; i < h->depth; i++) {
    float *yt, *y;
    DX_TRY(ht_enc_forward(&h->tenc[i], r, xt, 0, h->tlen[i], &yt));
    snprintf(name, sizeof name, "tencoder.%d", i);
    DX_TRY(observe_ct(r, name, yt, (size_t)h->tenc[i].chout, (size_t)h->tlen[i + 1], 0));
    DX_TRY(ht_enc_forward(&h->enc[i], r, x, h->freqs[i], T, &y));
    snprintf(name, sizeof name, "encoder.%d", i);
    DX_TRY(observe_ct(r, name, y, (size_t)h->enc[i].chout, (size_t)h->freqs[i + 1], (size_t)T));
    if (i == 0 && h->freq_emb >= 0)
      DX_TRY(DX_NN(r, channel_affine, y, y, 1, h->enc[0].chout * h->freqs[1], T, NULL, dx_run_w(r, h->freq_emb)));
    skip[i] = x = y;
    skip_t[i] = xt = yt;
  }
  int Fb = h->freqs[h->depth], Cb = h->fch[h->depth];
  long long Tb = h->tlen[h->depth];
  if (h->has_transformer) {
    float *xb = x, *xtb = xt;
    int D = Cb;
    if (h->bottom_channels) {
      D = h->bottom_channels;
      xb = dx_run_alloc(r, (size_t)D * Fb * T);
      xtb = dx_run_alloc(r, (size_t)D * Tb);
      if (!xb || !xtb) return DX_ERR_INTERNAL;
      DX_TRY(DX_NN(r, conv1d, x, dx_run_w(r, h->up_w), dx_run_w(r, h->up_b), xb, 1, Cb, Fb * T, D, 1, 1, 0, 1));
      DX_TRY(DX_NN(r, conv1d, xt, dx_run_w(r, h->up_t_w), dx_run_w(r, h->up_t_b), xtb, 1, Cb, (int)Tb, D, 1, 1, 0, 1));
    } else {
      /* the skips keep the encoder outputs: the transformer works on copies */
      xb = dx_run_alloc(r, (size_t)D * Fb * T);
      xtb = dx_run_alloc(r, (size_t)D * Tb);
      if (!xb || !xtb) return DX_ERR_INTERNAL;
      DX_TRY(DX_BE(r, copy, xb, x, (size_t)D * Fb * T * sizeof(float)));
      DX_TRY(DX_BE(r, copy, xtb, xt, (size_t)D * Tb * sizeof(float)));
    }
    DX_TRY(ht_transformer_forward(&h->tr, r, xb, Fb, T, xtb, (int)Tb));
    DX_TRY(observe_ct(r, "crosstransformer.0", xb, (size_t)D, (size_t)Fb, (size_t)T));
    DX_TRY(observe_ct(r, "crosstransformer.1", xtb, (size_t)D, (size_t)Tb, 0));
    if (h->bottom_channels) {
      float *xd = dx_run_alloc(r, (size_t)Cb * Fb * T), *xtd = dx_run_alloc(r, (size_t)Cb * Tb);
      if (!xd || !xtd) return DX_ERR_INTERNAL;
      DX_TRY(DX_NN(r, conv1d, xb, dx_run_w(r, h->down_w), dx_run_w(r, h->down_b), xd, 1, D, Fb * T, Cb, 1, 1, 0, 1));
      DX_TRY(DX_NN(r, conv1d, xtb, dx_run_w(r, h->down_t_w), dx_run_w(r, h->down_t_b), xtd, 1, D, (int)Tb, Cb, 1, 1, 0, 1));
      xb = xd;
      xtb = xtd;
    }
    x = xb;
    xt = xtb;
  }
  for (int j = 0; j < h->depth; j++) {
    int lvl = h->depth - 1 - j;
    float *y, *pre, *yt, *pret;
    DX_TRY(ht_dec_forward(&h->dec[j], r, x, skip[lvl], h->freqs[lvl + 1], T, 0, &y, &pre));
    snprintf(name, sizeof name, "decoder.%d.0", j);
    DX_TRY(observe_ct(r, name, y, (size_t)h->dec[j].chout, (size_t)h->freqs[lvl], (size_t)T));
    snprintf(name, sizeof name, "decoder.%d.1", j);
    DX_TRY(observe_ct(r, name, pre, (size_t)h->dec[j].chin, (size_t)h->freqs[lvl + 1], (size_t)T));
    DX_TRY(ht_dec_forward(&h->tdec[j], r, xt, skip_t[lvl], 0, h->tlen[lvl + 1], h->tlen[lvl], &yt, &pret));
    snprintf(name, sizeof name, "tdecoder.%d.0", j);
    DX_TRY(observe_ct(r, name, yt, (size_t)h->tdec[j].chout, (size_t)h->tlen[lvl], 0));
    snprintf(name, sizeof name, "tdecoder.%d.1", j);
    DX_TRY(observe_ct(r, name, pret, (size_t)h->tdec[j].chin, (size_t)h->tlen[lvl + 1], 0));
    x = y;
    xt = yt;
  }
  /* x [S*A*2][nfft/2][T] (CaC) -> audio; xt [S*A][L] */
  DX_TRY(DX_NN(r, destandardize, x, x, stats, 1, (long long)S * A * 2 * (nfft / 2) * T));
  float *xs = dx_run_alloc(r, (size_t)S * A * L);
  if (!xs) return DX_ERR_INTERNAL;
  DX_TRY(dx_spec_inverse(r, x, S * A, T, nfft, L, xs));
  DX_TRY(DX_NN(r, destandardize, xt, xt, stats + 2, 1, (long long)S * A * L));
  DX_TRY(DX_NN(r, add, xs, xt, xs, (long long)S * A * L));
  DX_TRY(DX_NN(r, copy2d, xs, L, out, (long long)length, S * A, (long long)length));
  return DX_OK;
}

const dx_graph_class dx_htdemucs_class = {
    .module = "demucs.htdemucs",
    .name = "HTDemucs",
    .klass = DX_MODEL_HTDEMUCS,
    .build = ht_build,
    .free = ht_free,
    .valid_length = ht_valid_length,
    .forward = ht_forward,
};
