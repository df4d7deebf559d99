/* analysis_stream.c: dx_analyzer_run_file's path for long files (past
 * params.stream_min_seconds, see dx_analysis.h). The file is decoded block
 * by block and each block, while it is in cache, is measured for loudness
 * (dx_loudness_stream_*, on the original channels at the original rate),
 * downmixed and fed to the analyzer's resampler, whose output goes
 * straight into the analysis signal; without resampling the downmix goes
 * there itself. The decoded channels are never held: memory grows only
 * with the analysis signal and the per-frame features. The resampler gets
 * the same calls as on the whole-file path (analysis.c), so the signal,
 * and every feature computed from it, come out identical. The features,
 * tempo and key then run as there.
 * Threading: the calling thread decodes, measures and resamples; the
 * feature work is shared among the run's threads as on the whole-file
 * path (features_pass.c); progress is reported from the calling thread. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "analysis_priv.h"
#include "dx_util.h"

typedef struct {
  dx_analyzer *a;
  dx_analysis_progress_fn progress;
  void *ud;
  dx_loudness_stream *loud; /* NULL: no loudness asked for */
  int want_mono, resample;
  float *y;                 /* the analysis signal, olen samples */
  size_t olen, n;           /* n: frames the header declares */
  float *stage;             /* downmix not resampled yet: samples [base, avail) of the track */
  size_t cap_stage, base, avail;
  dx_an_rs rs;
  float peak;
  int span, pct;            /* decoding reports progress 1 .. span - 1 */
  double t_loud, t_rs;
  dx_errbuf *err;
} stream_state;

/* Downmix n frames behind what the stage holds and resample what can be. */
static dx_status feed(stream_state *s, const float *b, int ch, size_t n) {
  if (s->rs.done) return DX_OK; /* the signal is complete: the rest is never read */
  size_t have = s->avail - s->base;
  if (have + n > s->cap_stage) {
    size_t cap = have + n + DX_AN_RESAMPLE_CHUNK;
    float *p = realloc(s->stage, cap * sizeof *p);
    if (!p) return dx_fail(s->err, DX_ERR_NOMEM, "out of memory");
    s->stage = p;
    s->cap_stage = cap;
  }
  dx_an_downmix(b, ch, n, s->stage + have);
  s->avail += n;
  dx_status st = dx_an_resample_feed(s->a, s->stage, s->base, s->avail, s->n, s->y, s->olen, &s->rs, s->err);
  if (st != DX_OK) return st;
  size_t drop = s->rs.pos - s->base;
  if (drop) {
    memmove(s->stage, s->stage + drop, (s->avail - s->rs.pos) * sizeof *s->stage);
    s->base = s->rs.pos;
  }
  return DX_OK;
}

static dx_status on_block(void *ud, const dx_audio *au, const float *b, size_t frame0, size_t n) {
  stream_state *s = ud;
  dx_status st;
  float pk = dx_sample_peak(b, n * (size_t)au->channels);
  if (pk > s->peak) s->peak = pk;
  if (s->loud) {
    double t0 = dx_now();
    st = dx_loudness_stream_add(s->loud, b, n, s->err);
    s->t_loud += dx_now() - t0;
    if (st != DX_OK) return st;
  }
  if (s->want_mono) {
    double t0 = dx_now();
    if (s->resample) {
      if ((st = feed(s, b, au->channels, n)) != DX_OK) return st;
    } else {
      dx_an_downmix(b, au->channels, n, s->y + frame0);
    }
    s->t_rs += dx_now() - t0;
  }
  int pct = (int)((double)(frame0 + n) / (double)s->n * s->span);
  if (pct > s->pct && pct < s->span) {
    s->pct = pct;
    if (s->progress && (st = s->progress(s->ud, pct)) != DX_OK) return st;
  }
  return DX_OK;
}

dx_status dx_an_run_stream(dx_analyzer *a, dx_audio_file *f, const dx_audio_info *info, unsigned features,
                           dx_analysis_progress_fn progress, void *ud, dx_analysis_result *r, dx_errbuf *err) {
  double t0 = dx_now();
  dx_audio hdr = {NULL, info->channels, info->samplerate, info->frames};
  dx_status st = dx_an_run_start(a, &hdr, 1, &features, r, err);
  if (st != DX_OK) return st;
  stream_state s = {.a = a, .progress = progress, .ud = ud, .n = info->frames, .err = err};
  s.want_mono = (features & ~DX_AF_LOUDNESS) != 0;
  s.span = s.want_mono ? 20 : 100;
  if (features & DX_AF_LOUDNESS) st = dx_loudness_stream_begin(info->channels, info->samplerate, &s.loud, err);
  if (st == DX_OK && s.want_mono) {
    st = dx_an_prepare(a, info->samplerate, info->frames, &s.olen, NULL, &s.y, err);
    s.resample = info->samplerate != a->p.feat.sample_rate;
    if (st == DX_OK && s.resample) st = dx_an_resample_begin(a, info->samplerate, err);
  }
  if (st == DX_OK) st = dx_audio_file_decode(f, NULL, NULL, on_block, &s, err);
  free(s.stage);
  r->t_loudness = s.t_loud;
  r->t_resample = s.t_rs;
  r->t_decode = dx_now() - t0 - s.t_loud - s.t_rs;
  if (st == DX_OK && !(s.peak > 1e-7f))
    st = dx_fail(err, DX_ERR_SILENT, "the audio is silent (peak %.3g)", (double)s.peak);
  if (st == DX_OK && s.resample && !s.rs.done) st = dx_fail(err, DX_ERR_INTERNAL, "resampling stopped short");
  if (s.loud) {
    if (st != DX_OK) {
      dx_loudness_stream_free(s.loud);
      return st;
    }
    double t1 = dx_now();
    if ((st = dx_loudness_stream_end(s.loud, &r->lufs, &r->lra, &r->true_peak_db, err)) != DX_OK) return st;
    r->t_loudness += dx_now() - t1;
  }
  if (st != DX_OK) return st;
  if (s.want_mono) {
    dx_an_run *run = NULL;
    if ((st = dx_an_run_begin(a, NULL, &run)) != DX_OK) {
      dx_an_run_end(run);
      return dx_fail(err, st, "out of memory");
    }
    if ((st = dx_an_run_features(a, run, s.y, s.olen, features, progress, ud, r, err)) != DX_OK) return st;
  }
  return progress ? progress(ud, 100) : DX_OK;
}
