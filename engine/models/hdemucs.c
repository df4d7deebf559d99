/* hdemucs.c: building the HDemucs (Demucs v3 hybrid) graph from a
 * checkpoint: kwargs with the official class defaults, the layer plan of the
 * official constructor (frequency layers until one frequency row is left,
 * the last of them merging the time branch through an "empty" time layer,
 * then time-strided layers on the merged signal), and every weight checked
 * for its shape. The forward pass is in hdemucs_forward.c.
 *
 * Threading: building is reentrant; the result is read-only. */
#include "hdemucs.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* kwargs of HDemucs.__init__ that shape the graph, with the class defaults. */
typedef struct {
  long long audio_channels, channels, channels_time, nfft, depth, kernel_size, time_stride, stride, context,
      context_enc, norm_starts, norm_groups, dconv_mode, dconv_depth, dconv_attn, dconv_lstm, samplerate;
  double growth, freq_emb, emb_scale, dconv_comp, segment;
  int cac, hybrid, hybrid_old, rewrite;
} hd_kwargs;

static dx_status read_kwargs(const dx_checkpoint *ck, hd_kwargs *k, dx_errbuf *err) {
  const dx_pyval *ct = dx_checkpoint_kwarg(ck, "channels_time");
  const dx_pyval *mf = dx_checkpoint_kwarg(ck, "multi_freqs");
  DX_TRY(dx_checkpoint_kwarg_int(ck, "audio_channels", 2, &k->audio_channels, err));
  DX_TRY(dx_checkpoint_kwarg_int(ck, "channels", 48, &k->channels, err));
  k->channels_time = 0;
  if (ct && ct->type != DX_PY_NONE) DX_TRY(dx_checkpoint_kwarg_int(ck, "channels_time", 0, &k->channels_time, err));
  DX_TRY(dx_checkpoint_kwarg_double(ck, "growth", 2, &k->growth, err));
  DX_TRY(dx_checkpoint_kwarg_int(ck, "nfft", 4096, &k->nfft, err));
  DX_TRY(dx_checkpoint_kwarg_bool(ck, "cac", 1, &k->cac, err));
  DX_TRY(dx_checkpoint_kwarg_int(ck, "depth", 6, &k->depth, err));
  DX_TRY(dx_checkpoint_kwarg_bool(ck, "rewrite", 1, &k->rewrite, err));
  DX_TRY(dx_checkpoint_kwarg_bool(ck, "hybrid", 1, &k->hybrid, err));
  DX_TRY(dx_checkpoint_kwarg_bool(ck, "hybrid_old", 0, &k->hybrid_old, err));
  DX_TRY(dx_checkpoint_kwarg_double(ck, "freq_emb", 0.2, &k->freq_emb, err));
  DX_TRY(dx_checkpoint_kwarg_double(ck, "emb_scale", 10, &k->emb_scale, err));
  DX_TRY(dx_checkpoint_kwarg_int(ck, "kernel_size", 8, &k->kernel_size, err));
  DX_TRY(dx_checkpoint_kwarg_int(ck, "time_stride", 2, &k->time_stride, err));
  DX_TRY(dx_checkpoint_kwarg_int(ck, "stride", 4, &k->stride, err));
  DX_TRY(dx_checkpoint_kwarg_int(ck, "context", 1, &k->context, err));
  DX_TRY(dx_checkpoint_kwarg_int(ck, "context_enc", 0, &k->context_enc, err));
  DX_TRY(dx_checkpoint_kwarg_int(ck, "norm_starts", 4, &k->norm_starts, err));
  DX_TRY(dx_checkpoint_kwarg_int(ck, "norm_groups", 4, &k->norm_groups, err));
  DX_TRY(dx_checkpoint_kwarg_int(ck, "dconv_mode", 1, &k->dconv_mode, err));
  DX_TRY(dx_checkpoint_kwarg_int(ck, "dconv_depth", 2, &k->dconv_depth, err));
  DX_TRY(dx_checkpoint_kwarg_double(ck, "dconv_comp", 4, &k->dconv_comp, err));
  DX_TRY(dx_checkpoint_kwarg_int(ck, "dconv_attn", 4, &k->dconv_attn, err));
  DX_TRY(dx_checkpoint_kwarg_int(ck, "dconv_lstm", 4, &k->dconv_lstm, err));
  DX_TRY(dx_checkpoint_kwarg_int(ck, "samplerate", 44100, &k->samplerate, err));
  DX_TRY(dx_checkpoint_kwarg_double(ck, "segment", 40, &k->segment, err));
  if (!k->cac) return dx_fail(err, DX_ERR_UNSUPPORTED, "HDemucs without cac (masking / Wiener) is not supported");
  if (!k->hybrid) return dx_fail(err, DX_ERR_UNSUPPORTED, "HDemucs with hybrid=False is not supported");
  if (!k->rewrite) return dx_fail(err, DX_ERR_UNSUPPORTED, "HDemucs with rewrite=False is not supported");
  if (mf && mf->type != DX_PY_NONE && !((mf->type == DX_PY_LIST || mf->type == DX_PY_TUPLE) && mf->n == 0))
    return dx_fail(err, DX_ERR_UNSUPPORTED, "HDemucs with multi_freqs is not supported");
  if (k->depth < 1 || k->depth > HD_MAX_DEPTH || k->channels < 1 || k->audio_channels < 1 || k->nfft < 16 ||
      k->nfft % 4 || k->stride < 1 || k->kernel_size < 1 || k->time_stride < 1 || k->norm_groups < 1)
    return dx_fail(err, DX_ERR_MODEL, "HDemucs kwargs out of range (depth %lld, channels %lld, nfft %lld)", k->depth,
                   k->channels, k->nfft);
  return DX_OK;
}

/* Sources list and info. */
static dx_status read_sources(const dx_checkpoint *ck, dx_model_info *info, dx_errbuf *err) {
  const dx_pyval *s = dx_checkpoint_kwarg(ck, "sources");
  if (!s || (s->type != DX_PY_LIST && s->type != DX_PY_TUPLE) || s->n < 1 || s->n > DX_MODEL_MAX_SOURCES)
    return dx_fail(err, DX_ERR_MODEL, "kwargs: sources must be a list of 1..%d names", DX_MODEL_MAX_SOURCES);
  for (size_t i = 0; i < s->n; i++) {
    if (s->items[i]->type != DX_PY_STR) return dx_fail(err, DX_ERR_MODEL, "kwargs: source %zu is not a string", i);
    snprintf(info->sources[i], sizeof info->sources[i], "%s", s->items[i]->s);
  }
  info->n_sources = (int)s->n;
  return DX_OK;
}

/* Weight and bias of a conv: weight [o][i][k] of a time layer, [o][i][k][k2]
 * of a frequency layer; the bias has o entries, i for a transposed conv (tr). */
static v3_wb take_conv(v3_builder *b, const char *name, int freq, int tr, int64_t o, int64_t i, int64_t k, int64_t k2) {
  const int64_t s[4] = {o, i, k, k2};
  return tr ? v3_take_wb_tr(b, name, freq ? 4 : 3, s) : v3_take_wb(b, name, freq ? 4 : 3, s);
}

static void build_layer(v3_builder *b, hd_layer *L, const char *prefix, int enc, int context, int dconv, int lstm,
                        int attn, const hd_kwargs *k) {
  if (b->st != DX_OK) return;
  char name[256];
  const int kh = L->kernel;
  if (enc) {
    snprintf(name, sizeof name, "%s.conv", prefix);
    L->conv = take_conv(b, name, L->freq, 0, L->chout, L->chin, kh, 1);
  } else {
    snprintf(name, sizeof name, "%s.conv_tr", prefix);
    L->conv = take_conv(b, name, L->freq, 1, L->chin, L->chout, kh, 1);
  }
  L->norm_a.w = L->norm_a.b = L->norm_b.w = L->norm_b.b = L->rewrite.w = L->rewrite.b = -1;
  /* encoder: norm1 (chout) after conv; decoder: norm2 (chout) after conv_tr, present even when empty */
  if (L->groups && (!enc || !L->empty)) {
    const int64_t s[1] = {L->chout};
    L->norm_a.w = v3_take(b, 1, s, "%s.%s.weight", prefix, enc ? "norm1" : "norm2");
    L->norm_a.b = v3_take(b, 1, s, "%s.%s.bias", prefix, enc ? "norm1" : "norm2");
  }
  if (L->empty) return;
  const int c = enc ? L->chout : L->chin;
  const int kr = 1 + 2 * context;
  L->context = context;
  snprintf(name, sizeof name, "%s.rewrite", prefix);
  L->rewrite = take_conv(b, name, L->freq, 0, 2 * c, c, kr, kr);
  if (L->groups) {
    const int64_t s[1] = {2 * c};
    L->norm_b.w = v3_take(b, 1, s, "%s.%s.weight", prefix, enc ? "norm2" : "norm1");
    L->norm_b.b = v3_take(b, 1, s, "%s.%s.bias", prefix, enc ? "norm2" : "norm1");
  }
  L->has_dconv = dconv;
  if (dconv && b->st == DX_OK) {
    snprintf(name, sizeof name, "%s.dconv", prefix);
    v3_dconv_build(b, &L->dconv, name, c, k->dconv_comp, (int)k->dconv_depth, lstm, attn);
  }
}

static dx_status hd_build(const dx_checkpoint *ck, dx_params *params, dx_model_info *info, void **graph,
                          dx_errbuf *err) {
  hd_kwargs k;
  DX_TRY(read_kwargs(ck, &k, err));
  DX_TRY(read_sources(ck, info, err));
  hdemucs *m = calloc(1, sizeof *m);
  if (!m) return DX_ERR_NOMEM;
  m->sources = info->n_sources;
  m->audio_channels = (int)k.audio_channels;
  m->depth = (int)k.depth;
  m->nfft = (int)k.nfft;
  m->hop = m->nfft / 4;
  m->hybrid_old = k.hybrid_old;
  m->freq_emb = -1;
  info->klass = DX_MODEL_HDEMUCS;
  info->audio_channels = m->audio_channels;
  info->samplerate = (int)k.samplerate;
  info->segment = k.segment;

  v3_builder b = {ck, params, err, DX_OK};
  int chin = m->audio_channels, chin_z = chin * (k.cac ? 2 : 1);
  int chout = (int)(k.channels_time ? k.channels_time : k.channels), chout_z = (int)k.channels;
  int freqs = m->nfft / 2;
  int n_t = 0;
  char name[64];
  for (int index = 0; index < m->depth && b.st == DX_OK; index++) {
    const int lstm = index >= k.dconv_lstm, attn = index >= k.dconv_attn, norm = index >= k.norm_starts;
    const int freq = freqs > 1;
    int stri = (int)k.stride, ker = (int)k.kernel_size, pad = 1, last_freq = 0;
    if (!freq) {
      if (freqs != 1) {
        b.st = dx_fail(err, DX_ERR_MODEL, "HDemucs: %d frequencies left at layer %d", freqs, index);
        break;
      }
      ker = (int)k.time_stride * 2;
      stri = (int)k.time_stride;
    }
    if (freq && freqs <= k.kernel_size) {
      ker = freqs;
      pad = 0;
      last_freq = 1;
    }
    if (last_freq) {
      chout_z = chout > chout_z ? chout : chout_z;
      chout = chout_z;
    }
    const int groups = norm ? (int)k.norm_groups : 0;
    hd_layer *e = &m->enc[index];
    *e = (hd_layer){.freq = freq, .kernel = ker, .stride = stri, .pad = pad ? ker / 4 : 0, .chin = chin_z,
                    .chout = chout_z, .groups = groups};
    snprintf(name, sizeof name, "encoder.%d", index);
    build_layer(&b, e, name, 1, (int)k.context_enc, (int)(k.dconv_mode & 1), lstm, attn, &k);
    if (freq) {
      hd_layer *t = &m->tenc[index];
      *t = (hd_layer){.freq = 0, .empty = last_freq, .kernel = (int)k.kernel_size, .stride = (int)k.stride,
                      .pad = (int)k.kernel_size / 4, .chin = chin, .chout = chout, .groups = groups};
      snprintf(name, sizeof name, "tencoder.%d", index);
      build_layer(&b, t, name, 1, (int)k.context_enc, (int)(k.dconv_mode & 1), lstm, attn, &k);
      n_t++;
    }
    if (index == 0) {
      chin = m->audio_channels * m->sources;
      chin_z = chin * (k.cac ? 2 : 1);
    }
    /* decoders: stored deepest first, so index maps to j = depth-1-index */
    hd_layer *d = &m->dec[m->depth - 1 - index];
    *d = (hd_layer){.freq = freq, .last = index == 0, .kernel = ker, .stride = stri, .pad = pad ? ker / 4 : 0,
                    .chin = chout_z, .chout = chin_z, .groups = groups};
    snprintf(name, sizeof name, "decoder.%d", m->depth - 1 - index);
    build_layer(&b, d, name, 0, (int)k.context, (int)(k.dconv_mode & 2), lstm, attn, &k);
    if (freq) {
      hd_layer *t = &m->tdec[index]; /* renumbered below once n_t is known */
      *t = (hd_layer){.freq = 0, .empty = last_freq, .last = index == 0, .kernel = (int)k.kernel_size,
                      .stride = (int)k.stride, .pad = (int)k.kernel_size / 4, .chin = chout, .chout = chin,
                      .groups = groups, .lstm = lstm, .attn = attn};
    }
    chin = chout;
    chin_z = chout_z;
    chout = (int)(k.growth * chout);
    chout_z = (int)(k.growth * chout_z);
    if (freq) freqs = freqs <= k.kernel_size ? 1 : freqs / (int)k.stride;
    if (index == 0 && k.freq_emb != 0.0) {
      const int64_t s[2] = {freqs, chin_z};
      dx_param_id wid = v3_take(&b, 2, s, "freq_emb.embedding.weight");
      if (b.st == DX_OK) {
        /* x += freq_emb * (W * emb_scale), as float32 like the official code, stored [C][F]. */
        const float *w = dx_params_host(params, wid);
        float *e = malloc((size_t)freqs * chin_z * sizeof *e);
        if (!e) {
          b.st = DX_ERR_NOMEM;
          break;
        }
        for (int f = 0; f < freqs; f++)
          for (int c = 0; c < chin_z; c++)
            e[(size_t)c * freqs + f] = (w[(size_t)f * chin_z + c] * (float)k.emb_scale) * (float)k.freq_emb;
        m->freq_emb = dx_params_add(params, e, (size_t)freqs * chin_z, &b.st);
        free(e);
        m->emb_freqs = freqs;
        m->emb_channels = chin_z;
      }
    }
  }
  m->n_t = n_t;
  /* tdecoder list is inserted at the front: tdecoder[j] is time layer n_t-1-j. */
  if (b.st == DX_OK) {
    hd_layer tmp[HD_MAX_DEPTH];
    memcpy(tmp, m->tdec, sizeof tmp);
    for (int j = 0; j < n_t; j++) {
      m->tdec[j] = tmp[n_t - 1 - j];
      snprintf(name, sizeof name, "tdecoder.%d", j);
      build_layer(&b, &m->tdec[j], name, 0, (int)k.context, (int)(k.dconv_mode & 2), m->tdec[j].lstm,
                  m->tdec[j].attn, &k);
    }
  }
  if (b.st != DX_OK) {
    free(m);
    return b.st;
  }
  *graph = m;
  return DX_OK;
}

static void hd_free(void *graph) { free(graph); }

static size_t hd_valid_length(const void *graph, size_t length) {
  (void)graph;
  return length;
}

static dx_status hd_forward(const void *graph, dx_run *r, const float *in, size_t length, float *out) {
  return hdemucs_forward(graph, r, in, length, out);
}

const dx_graph_class dx_hdemucs_class = {"demucs.hdemucs", "HDemucs", DX_MODEL_HDEMUCS, hd_build, hd_free,
                                         hd_valid_length, hd_forward};
