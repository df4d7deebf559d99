/* analysis_stream.c: dx_analyzer_run_file's path for long files (past
 * params.stream_min_seconds, see dx_analysis.h). The file is decoded block
 * by block and each block, while it is in cache, is measured for loudness
 * (dx_loudness_stream_*, on the original channels at the original rate),
 * downmixed and fed to the analyzer's resampler, whose output goes to the
 * analysis signal's scratch file (unlinked, in params.scratch_dir); without
 * resampling the downmix goes there itself. Neither the decoded channels
 * nor the signal are held: memory grows only with the per-frame features.
 * The resampler gets the same calls as on the whole-file path (analysis.c)
 * and each frame is computed from the same samples (features_pass.c reads
 * each block's window back from the file), so every feature comes out
 * identical. The features, tempo and key then run as there.
 * Threading: the calling thread decodes, measures and resamples; the
 * feature work is shared among the run's threads as on the whole-file
 * path (features_pass.c); progress is reported from the calling thread. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "analysis_priv.h"
#include "dx_util.h"

typedef struct {
  dx_analyzer *a;
  dx_analysis_progress_fn progress;
  void *ud;
  dx_loudness_stream *loud; /* NULL: no loudness asked for */
  int want_mono, resample;
  int dance;                /* gather danceability's deviations from what is written */
  int fd;                   /* the analysis signal's scratch file, olen samples */
  float *out;               /* its samples [out_base, rs.opos) not written yet; room for out_cap */
  size_t out_base, out_cap;
  size_t olen, n;           /* n: frames the header declares */
  float *stage;             /* downmix not resampled yet: samples [base, avail) of the track */
  size_t cap_stage, base, avail;
  dx_an_rs rs;
  float peak;
  int span, pct;            /* decoding reports progress 1 .. span - 1 */
  double t_loud, t_rs;
  dx_errbuf *err;
} stream_state;

/* Append the analysis signal's samples [out_base, end) from out to the file. */
static dx_status flush(stream_state *s, size_t end) {
  if (end <= s->out_base) return DX_OK;
  if (s->dance && dx_dance_feed(&s->a->dance, s->out, end - s->out_base) != DX_OK)
    return dx_fail(s->err, DX_ERR_NOMEM, "out of memory");
  if (dx_write_all(s->fd, s->out, (end - s->out_base) * sizeof *s->out))
    return dx_fail(s->err, DX_ERR_IO, "cannot write the analysis scratch file: %s", strerror(errno));
  s->out_base = end;
  return DX_OK;
}

/* Downmix n frames behind what the stage holds, resample what can be and
 * write it out. */
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
  for (;;) {
    dx_status st = dx_an_resample_feed(s->a, s->stage, s->base, s->avail, s->n, s->out, s->out_base, s->out_cap,
                                       s->olen, &s->rs, s->err);
    if (st != DX_OK) return st;
    int full = s->rs.opos == s->out_base + s->out_cap;
    if ((st = flush(s, s->rs.opos)) != DX_OK) return st;
    if (!full || s->rs.done) break;
  }
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
      for (size_t i = 0; i < n; i += s->out_cap) {
        size_t k = n - i < s->out_cap ? n - i : s->out_cap;
        dx_an_downmix(b + i * au->channels, au->channels, k, s->out);
        if ((st = flush(s, s->out_base + k)) != DX_OK) return st;
      }
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
  stream_state s = {.a = a, .progress = progress, .ud = ud, .n = info->frames, .fd = -1, .err = err};
  s.want_mono = (features & ~DX_AF_LOUDNESS) != 0;
  if ((s.dance = (features & DX_AF_TEMPO) != 0)) dx_dance_begin(&a->dance, a->p.feat.sample_rate);
  s.span = s.want_mono ? 20 : 100;
  if (features & DX_AF_LOUDNESS) st = dx_loudness_stream_begin(info->channels, info->samplerate, &s.loud, err);
  if (st == DX_OK && s.want_mono) {
    st = dx_an_prepare(a, info->samplerate, info->frames, &s.olen, NULL, NULL, err);
    s.resample = info->samplerate != a->p.feat.sample_rate;
    /* out holds what one feed gives (a resampler call or two, or a block),
     * up to 16 MiB for absurdly low rates (then feed empties it between
     * calls: the same signal, not necessarily the same bits as unstreamed) */
    double ratio = (double)a->p.feat.sample_rate / info->samplerate;
    s.out_cap = s.resample ? (size_t)fmin(4.0 * DX_AN_RESAMPLE_CHUNK * ratio + 65536, 1 << 22) : 65536;
    if (st == DX_OK && !(s.out = malloc(s.out_cap * sizeof *s.out))) st = dx_fail(err, DX_ERR_NOMEM, "out of memory");
    if (st == DX_OK && s.resample) st = dx_an_resample_begin(a, info->samplerate, err);
    const char *dir = a->p.scratch_dir[0] ? a->p.scratch_dir : getenv("TMPDIR");
    if (st == DX_OK && (s.fd = dx_scratch_open(dir, "analysis")) < 0)
      st = dx_fail(err, DX_ERR_IO, "cannot create the analysis scratch file in %s: %s", dir && *dir ? dir : "/tmp",
                   strerror(errno));
  }
  if (st == DX_OK) st = dx_audio_file_decode(f, NULL, NULL, on_block, &s, err);
  free(s.stage);
  free(s.out);
  r->t_loudness = s.t_loud;
  r->t_resample = s.t_rs;
  r->t_decode = dx_now() - t0 - s.t_loud - s.t_rs;
  if (st == DX_OK && !(s.peak > 1e-7f))
    st = dx_fail(err, DX_ERR_SILENT, "the audio is silent (peak %.3g)", (double)s.peak);
  if (st == DX_OK && s.resample && !s.rs.done) st = dx_fail(err, DX_ERR_INTERNAL, "resampling stopped short");
  if (s.loud) {
    if (st == DX_OK) {
      double t1 = dx_now();
      st = dx_loudness_stream_end(s.loud, &r->lufs, &r->lra, &r->true_peak_db, err);
      r->t_loudness += dx_now() - t1;
    } else {
      dx_loudness_stream_free(s.loud);
    }
  }
  if (st == DX_OK && s.want_mono) {
    dx_an_run *run = NULL;
    if ((st = dx_an_run_begin(a, NULL, &run)) != DX_OK) {
      dx_an_run_end(run);
      st = dx_fail(err, st, "out of memory");
    } else {
      a->sig_fd = s.fd;
      a->sig_len = s.out_base;
      st = dx_an_run_features(a, run, NULL, s.olen, features, progress, ud, r, err);
      a->sig_fd = -1;
    }
  }
  if (s.fd >= 0) close(s.fd);
  if (st != DX_OK) return st;
  return progress ? progress(ud, 100) : DX_OK;
}
