/* demucs_v3.c: the time-only Demucs v3 graph (demucs/demucs.py `Demucs`):
 * optional standardisation by the mono mix, zero padding to the valid
 * length (centred), 2x upsampling (julius.resample_frac), `depth` encoder
 * layers (Conv1d k/s without padding, GroupNorm from norm_starts, GELU,
 * DConv with BLSTM/LocalState from dconv_lstm/dconv_attn, 1x1 rewrite +
 * GLU), an optional BLSTM bottleneck (lstm_layers), decoders (rewrite with
 * context + GLU, transposed conv, GroupNorm + GELU but for the last) with
 * centre-trimmed skips, 2x downsampling and a centre trim to the input.
 *
 * Refused with DX_ERR_UNSUPPORTED: gelu/glu/rewrite off (ReLU variants).
 * Threading: a built graph is read-only; forward uses only its dx_run. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "demucs_v3_dconv.h"

#define DM_MAX_DEPTH 10

typedef struct {
  int chin, chout, out; /* encoder chin -> chout; decoder chout -> out */
  v3_wb conv, norm1, rewrite, norm2;
  int has_dconv;
  v3_dconv dconv;
  v3_wb dec_rewrite, dec_norm1, dec_conv_tr, dec_norm2;
  int dec_has_dconv;
  v3_dconv dec_dconv;
} dm_layer;

typedef struct {
  int sources, audio_channels, depth, kernel, stride, context, groups_from, norm_groups, normalize, resample;
  dm_layer layer[DM_MAX_DEPTH]; /* by index (encoder.i, decoder[depth-1-i]) */
  int has_lstm;
  v3_blstm lstm;
} demucs_v3;

static dx_status dm_build(const dx_checkpoint *ck, dx_params *params, dx_model_info *info, void **graph,
                          dx_errbuf *err) {
  long long audio_channels, channels, depth, lstm_layers, kernel, stride, context, norm_starts, norm_groups,
      dconv_mode, dconv_depth, dconv_attn, dconv_lstm, samplerate;
  double growth, dconv_comp, segment;
  int rewrite, gelu, glu, normalize, resample;
  DX_TRY(dx_checkpoint_kwarg_int(ck, "audio_channels", 2, &audio_channels, err));
  DX_TRY(dx_checkpoint_kwarg_int(ck, "channels", 64, &channels, err));
  DX_TRY(dx_checkpoint_kwarg_double(ck, "growth", 2.0, &growth, err));
  DX_TRY(dx_checkpoint_kwarg_int(ck, "depth", 6, &depth, err));
  DX_TRY(dx_checkpoint_kwarg_bool(ck, "rewrite", 1, &rewrite, err));
  DX_TRY(dx_checkpoint_kwarg_int(ck, "lstm_layers", 0, &lstm_layers, err));
  DX_TRY(dx_checkpoint_kwarg_int(ck, "kernel_size", 8, &kernel, err));
  DX_TRY(dx_checkpoint_kwarg_int(ck, "stride", 4, &stride, err));
  DX_TRY(dx_checkpoint_kwarg_int(ck, "context", 1, &context, err));
  DX_TRY(dx_checkpoint_kwarg_bool(ck, "gelu", 1, &gelu, err));
  DX_TRY(dx_checkpoint_kwarg_bool(ck, "glu", 1, &glu, err));
  DX_TRY(dx_checkpoint_kwarg_int(ck, "norm_starts", 4, &norm_starts, err));
  DX_TRY(dx_checkpoint_kwarg_int(ck, "norm_groups", 4, &norm_groups, err));
  DX_TRY(dx_checkpoint_kwarg_int(ck, "dconv_mode", 1, &dconv_mode, err));
  DX_TRY(dx_checkpoint_kwarg_int(ck, "dconv_depth", 2, &dconv_depth, err));
  DX_TRY(dx_checkpoint_kwarg_double(ck, "dconv_comp", 4, &dconv_comp, err));
  DX_TRY(dx_checkpoint_kwarg_int(ck, "dconv_attn", 4, &dconv_attn, err));
  DX_TRY(dx_checkpoint_kwarg_int(ck, "dconv_lstm", 4, &dconv_lstm, err));
  DX_TRY(dx_checkpoint_kwarg_bool(ck, "normalize", 1, &normalize, err));
  DX_TRY(dx_checkpoint_kwarg_bool(ck, "resample", 1, &resample, err));
  DX_TRY(dx_checkpoint_kwarg_int(ck, "samplerate", 44100, &samplerate, err));
  DX_TRY(dx_checkpoint_kwarg_double(ck, "segment", 40, &segment, err));
  if (!rewrite || !gelu || !glu)
    return dx_fail(err, DX_ERR_UNSUPPORTED, "Demucs with rewrite/gelu/glu off is not supported");
  if (depth < 1 || depth > DM_MAX_DEPTH || channels < 1 || audio_channels < 1 || kernel < 1 || stride < 1 ||
      norm_groups < 1 || lstm_layers < 0 || lstm_layers > V3_LSTM_MAX_LAYERS)
    return dx_fail(err, DX_ERR_MODEL, "Demucs kwargs out of range");
  const dx_pyval *s = dx_checkpoint_kwarg(ck, "sources");
  if (!s || (s->type != DX_PY_LIST && s->type != DX_PY_TUPLE) || s->n < 1 || s->n > DX_MODEL_MAX_SOURCES)
    return dx_fail(err, DX_ERR_MODEL, "kwargs: sources must be a list of 1..%d names", DX_MODEL_MAX_SOURCES);
  for (size_t i = 0; i < s->n; i++) {
    if (s->items[i]->type != DX_PY_STR) return dx_fail(err, DX_ERR_MODEL, "kwargs: source %zu is not a string", i);
    snprintf(info->sources[i], sizeof info->sources[i], "%s", s->items[i]->s);
  }
  info->n_sources = (int)s->n;
  info->klass = DX_MODEL_DEMUCS;
  info->audio_channels = (int)audio_channels;
  info->samplerate = (int)samplerate;
  info->segment = segment;

  demucs_v3 *m = calloc(1, sizeof *m);
  if (!m) return DX_ERR_NOMEM;
  m->sources = info->n_sources;
  m->audio_channels = (int)audio_channels;
  m->depth = (int)depth, m->kernel = (int)kernel, m->stride = (int)stride, m->context = (int)context;
  m->groups_from = (int)norm_starts, m->norm_groups = (int)norm_groups;
  m->normalize = normalize, m->resample = resample;
  v3_builder b = {ck, params, err, DX_OK};
  char name[128];
  int in_ch = m->audio_channels, ch = (int)channels;
  for (int i = 0; i < m->depth && b.st == DX_OK; i++) {
    dm_layer *L = &m->layer[i];
    const int norm = i >= norm_starts, lstm = i >= dconv_lstm, attn = i >= dconv_attn;
    L->chin = in_ch, L->chout = ch, L->out = i > 0 ? in_ch : m->sources * m->audio_channels;
    L->norm1.w = L->norm1.b = L->norm2.w = L->norm2.b = -1;
    L->dec_norm1.w = L->dec_norm1.b = L->dec_norm2.w = L->dec_norm2.b = -1;
    const int64_t sc[3] = {ch, in_ch, kernel}, sr[3] = {2 * ch, ch, 1}, sn1[1] = {ch}, sn2[1] = {2 * ch};
    int k = 0;
    snprintf(name, sizeof name, "encoder.%d.%d", i, k);
    L->conv = v3_take_wb(&b, name, 3, sc);
    if (norm) {
      L->norm1.w = v3_take(&b, 1, sn1, "encoder.%d.1.weight", i);
      L->norm1.b = v3_take(&b, 1, sn1, "encoder.%d.1.bias", i);
    }
    k = 3;
    if (dconv_mode & 1) {
      snprintf(name, sizeof name, "encoder.%d.%d", i, k++);
      L->has_dconv = 1;
      if (b.st == DX_OK) v3_dconv_build(&b, &L->dconv, name, ch, dconv_comp, (int)dconv_depth, lstm, attn);
    }
    snprintf(name, sizeof name, "encoder.%d.%d", i, k);
    L->rewrite = v3_take_wb(&b, name, 3, sr);
    if (norm) {
      L->norm2.w = v3_take(&b, 1, sn2, "encoder.%d.%d.weight", i, k + 1);
      L->norm2.b = v3_take(&b, 1, sn2, "encoder.%d.%d.bias", i, k + 1);
    }
    /* decoder[depth-1-i] */
    const int j = m->depth - 1 - i;
    const int64_t sdr[3] = {2 * ch, ch, 2 * context + 1}, sdt[3] = {ch, L->out, kernel}, sdn[1] = {L->out};
    snprintf(name, sizeof name, "decoder.%d.0", j);
    L->dec_rewrite = v3_take_wb(&b, name, 3, sdr);
    if (norm) {
      L->dec_norm1.w = v3_take(&b, 1, sn2, "decoder.%d.1.weight", j);
      L->dec_norm1.b = v3_take(&b, 1, sn2, "decoder.%d.1.bias", j);
    }
    k = 3;
    if (dconv_mode & 2) {
      snprintf(name, sizeof name, "decoder.%d.%d", j, k++);
      L->dec_has_dconv = 1;
      if (b.st == DX_OK) v3_dconv_build(&b, &L->dec_dconv, name, ch, dconv_comp, (int)dconv_depth, lstm, attn);
    }
    snprintf(name, sizeof name, "decoder.%d.%d", j, k);
    L->dec_conv_tr = v3_take_wb_tr(&b, name, 3, sdt);
    if (i > 0 && norm) {
      L->dec_norm2.w = v3_take(&b, 1, sdn, "decoder.%d.%d.weight", j, k + 1);
      L->dec_norm2.b = v3_take(&b, 1, sdn, "decoder.%d.%d.bias", j, k + 1);
    }
    in_ch = ch;
    ch = (int)(growth * ch);
  }
  if (lstm_layers && b.st == DX_OK) {
    m->has_lstm = 1;
    v3_blstm_build(&b, &m->lstm, "lstm", in_ch, (int)lstm_layers, 0, 0);
  }
  if (b.st != DX_OK) {
    free(m);
    return b.st;
  }
  *graph = m;
  return DX_OK;
}

static void dm_free(void *graph) { free(graph); }

static size_t dm_valid_length(const void *graph, size_t length_sz) {
  const demucs_v3 *m = graph;
  double length = (double)length_sz;
  if (m->resample) length *= 2;
  for (int i = 0; i < m->depth; i++) {
    length = ceil((length - m->kernel) / m->stride) + 1;
    if (length < 1) length = 1;
  }
  for (int i = 0; i < m->depth; i++) length = (length - 1) * m->stride + m->kernel;
  if (m->resample) length = ceil(length / 2);
  return (size_t)length;
}

static dx_status gn(dx_run *r, const v3_wb *w, int groups, float *x, int c, int len) {
  return v3_group_norm(r, w, w->w >= 0 ? groups : 0, x, c, len);
}

static dx_status dm_forward(const void *graph, dx_run *r, const float *in, size_t length_sz, float *out) {
  const demucs_v3 *m = graph;
  const int ca = m->audio_channels, S = m->sources, length = (int)length_sz;
  if (length_sz < 1 || length_sz > (size_t)1 << 29) return dx_fail(r->err, DX_ERR_INVALID, "bad length");
  DX_TRY(v3_check_ops(r));
  const int vlen = (int)dm_valid_length(m, length_sz), delta = vlen - length;
  float *stats = dx_run_alloc(r, 2);
  float *x = dx_run_alloc(r, (size_t)ca * vlen);
  if (!stats || !x) return DX_ERR_INTERNAL;
  {
    const size_t mark = dx_run_mark(r);
    const float *src = in;
    if (m->normalize) {
      float *mono = dx_run_alloc(r, (size_t)length), *xn = dx_run_alloc(r, (size_t)ca * length);
      if (!mono || !xn) return DX_ERR_INTERNAL;
      DX_TRY(DX_BE(r, copy, mono, in, (size_t)length * sizeof(float)));
      for (int c = 1; c < ca; c++) DX_TRY(DX_NN(r, add, mono, in + (size_t)c * length, mono, length));
      if (ca > 1) DX_TRY(DX_NN(r, scale_shift, mono, mono, length, 1.0f / (float)ca, 0.0f));
      DX_TRY(DX_NN(r, mean_std, mono, stats, 1, length));
      DX_TRY(DX_NN(r, standardize, in, xn, stats, 1, (long long)ca * length, 1e-5f));
      src = xn;
    }
    DX_TRY(DX_NN(r, pad1d, src, x, ca, length, delta / 2, delta - delta / 2, DX_PAD_ZERO));
    dx_run_release(r, mark);
  }
  int T = vlen;
  if (m->resample) {
    float *up = dx_run_alloc(r, (size_t)ca * 2 * T);
    if (!up) return DX_ERR_INTERNAL;
    DX_TRY(DX_NN(r, resample, x, up, ca, T, 1, 2));
    x = up;
    T *= 2;
  }
  float *saved[DM_MAX_DEPTH];
  int saved_t[DM_MAX_DEPTH];
  char name[64];
  for (int i = 0; i < m->depth; i++) {
    const dm_layer *L = &m->layer[i];
    const int To = (T - m->kernel) / m->stride + 1;
    if (T < m->kernel) return dx_fail(r->err, DX_ERR_INVALID, "Demucs: input too short");
    float *y = dx_run_alloc(r, (size_t)L->chout * To);
    const size_t mark = dx_run_mark(r);
    float *a = dx_run_alloc(r, (size_t)L->chout * To), *z = dx_run_alloc(r, (size_t)2 * L->chout * To);
    if (!y || !a || !z) return DX_ERR_INTERNAL;
    DX_TRY(DX_NN(r, conv1d, x, dx_run_w(r, L->conv.w), dx_run_w(r, L->conv.b), a, 1, L->chin, T, L->chout, m->kernel,
                 m->stride, 0, 1));
    DX_TRY(gn(r, &L->norm1, m->norm_groups, a, L->chout, To));
    DX_TRY(DX_NN(r, gelu, a, a, (long long)L->chout * To));
    if (L->has_dconv) DX_TRY(v3_dconv_forward(&L->dconv, r, a, 1, To));
    DX_TRY(DX_NN(r, conv1d, a, dx_run_w(r, L->rewrite.w), dx_run_w(r, L->rewrite.b), z, 1, L->chout, To,
                 2 * L->chout, 1, 1, 0, 1));
    DX_TRY(gn(r, &L->norm2, m->norm_groups, z, 2 * L->chout, To));
    DX_TRY(DX_NN(r, glu, z, y, 1, L->chout, To));
    dx_run_release(r, mark);
    const size_t shape[2] = {(size_t)L->chout, (size_t)To};
    snprintf(name, sizeof name, "encoder.%d", i);
    DX_TRY(dx_run_observe(r, name, y, shape, 2));
    saved[i] = y, saved_t[i] = To;
    x = y, T = To;
  }
  if (m->has_lstm) {
    float *y = dx_run_alloc(r, (size_t)m->lstm.dim * T);
    if (!y) return DX_ERR_INTERNAL;
    DX_TRY(v3_blstm_forward(&m->lstm, r, x, y, 1, T));
    x = y;
  }
  for (int j = 0; j < m->depth; j++) {
    const int i = m->depth - 1 - j;
    const dm_layer *L = &m->layer[i];
    const int C = L->chout, Tf = (T - 1) * m->stride + m->kernel;
    float *y = dx_run_alloc(r, (size_t)L->out * Tf);
    const size_t mark = dx_run_mark(r);
    float *s = dx_run_alloc(r, (size_t)C * T), *z = dx_run_alloc(r, (size_t)2 * C * T), *a = dx_run_alloc(r, (size_t)C * T);
    if (!y || !s || !z || !a) return DX_ERR_INTERNAL;
    /* x + center_trim(skip, x) */
    if (saved_t[i] < T) return dx_fail(r->err, DX_ERR_INTERNAL, "Demucs: skip shorter than input");
    const int off = (saved_t[i] - T) / 2;
    DX_TRY(DX_NN(r, copy2d, saved[i] + off, saved_t[i], s, T, C, T));
    DX_TRY(DX_NN(r, add, x, s, s, (long long)C * T));
    DX_TRY(DX_NN(r, conv1d, s, dx_run_w(r, L->dec_rewrite.w), dx_run_w(r, L->dec_rewrite.b), z, 1, C, T, 2 * C,
                 2 * m->context + 1, 1, m->context, 1));
    DX_TRY(gn(r, &L->dec_norm1, m->norm_groups, z, 2 * C, T));
    DX_TRY(DX_NN(r, glu, z, a, 1, C, T));
    if (L->dec_has_dconv) DX_TRY(v3_dconv_forward(&L->dec_dconv, r, a, 1, T));
    DX_TRY(DX_NN(r, conv_tr1d, a, dx_run_w(r, L->dec_conv_tr.w), dx_run_w(r, L->dec_conv_tr.b), y, 1, C, T, L->out,
                 m->kernel, m->stride, 0, Tf));
    if (i > 0) {
      DX_TRY(gn(r, &L->dec_norm2, m->norm_groups, y, L->out, Tf));
      DX_TRY(DX_NN(r, gelu, y, y, (long long)L->out * Tf));
    }
    dx_run_release(r, mark);
    const size_t shape[2] = {(size_t)L->out, (size_t)Tf};
    snprintf(name, sizeof name, "decoder.%d", j);
    DX_TRY(dx_run_observe(r, name, y, shape, 2));
    x = y, T = Tf;
  }
  const int rows = S * ca;
  if (m->resample) {
    float *dn = dx_run_alloc(r, (size_t)rows * (T / 2));
    if (!dn) return DX_ERR_INTERNAL;
    DX_TRY(DX_NN(r, resample, x, dn, rows, T, 2, 1));
    x = dn;
    T /= 2;
  }
  if (T < length) return dx_fail(r->err, DX_ERR_INTERNAL, "Demucs: output shorter than input");
  if (m->normalize) DX_TRY(DX_NN(r, destandardize, x, x, stats, 1, (long long)rows * T));
  const int off = (T - length) / 2;
  DX_TRY(DX_NN(r, copy2d, x + off, T, out, length, rows, length));
  return DX_OK;
}

const dx_graph_class dx_demucs_v3_class = {"demucs.demucs", "Demucs", DX_MODEL_DEMUCS, dm_build, dm_free,
                                           dm_valid_length, dm_forward};
