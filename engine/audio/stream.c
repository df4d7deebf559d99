/* stream.c: audio files of any length in bounded memory (see dx_audio.h):
 * a block writer with temporary name and rename (optionally rescaling by the
 * whole file's peak through a float32 scratch file) and a random-access
 * reader that converts rate and channels, reading WAV/AIFF/FLAC in place and
 * anything else through a resampled float32 scratch file.
 * Scratch files are unlinked as soon as they are created: a crash leaves
 * nothing behind. Thread-safe: no shared state; one thread per object. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <soxr.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audio_internal.h"
#include "dx_audio.h"
#include "dx_util.h"

/* ---- writer ---- */

struct dx_audio_writer {
  char path[4096], tmp[4200];
  SF_INFO si;
  SNDFILE *sf; /* open on tmp (straight away, or at close with RESCALE) */
  int rescale, clamp, tanh, fd;
  int mp3_kbps; /* MP3: constant bit rate */
  int int_bits; /* 16 or 24: integer samples converted here (int_block); 0: floats to libsndfile */
  int *int_block;
  float peak;
  size_t frames;
  float *block; /* [DX_AUDIO_BLOCK][channels] interleaved */
};

static dx_status enc_format(dx_audio_encoding enc, int *fmt) {
  switch (enc) {
  case DX_ENC_WAV_PCM16: *fmt = SF_FORMAT_WAV | SF_FORMAT_PCM_16; return DX_OK;
  case DX_ENC_WAV_PCM24: *fmt = SF_FORMAT_WAV | SF_FORMAT_PCM_24; return DX_OK;
  case DX_ENC_WAV_FLOAT: *fmt = SF_FORMAT_WAV | SF_FORMAT_FLOAT; return DX_OK;
  case DX_ENC_FLAC: *fmt = SF_FORMAT_FLAC | SF_FORMAT_PCM_16; return DX_OK;
  case DX_ENC_FLAC24: *fmt = SF_FORMAT_FLAC | SF_FORMAT_PCM_24; return DX_OK;
  case DX_ENC_MP3: *fmt = SF_FORMAT_MPEG | SF_FORMAT_MPEG_LAYER_III; return DX_OK;
  }
  return DX_ERR_INVALID;
}

/* libsndfile's LAME encoder takes a bit rate as a compression level in
 * [0, 1], spread linearly over the MPEG version's range of rates, which the
 * sample rate decides: MPEG-1 (32 to 48 kHz) 320..32 kbps, MPEG-2 (16 to 24
 * kHz) 160..8, MPEG-2.5 (below) 64..8. A rate outside the range is brought
 * to its nearest end. */
static dx_status set_mp3_rate(dx_audio_writer *w, dx_errbuf *err) {
  double hi = w->si.samplerate >= 32000 ? 320 : w->si.samplerate >= 16000 ? 160 : 64;
  double lo = w->si.samplerate >= 32000 ? 32 : 8;
  double kbps = w->mp3_kbps < lo ? lo : w->mp3_kbps > hi ? hi : w->mp3_kbps;
  int mode = SF_BITRATE_MODE_CONSTANT;
  /* libsndfile truncates the rate it computes: a quarter kbps up keeps
   * kbps itself. The level first: the mode change re-reads it. */
  double level = kbps >= hi ? 0.0 : (hi - kbps - 0.25) / (hi - lo);
  if (!sf_command(w->sf, SFC_SET_COMPRESSION_LEVEL, &level, sizeof level) ||
      !sf_command(w->sf, SFC_SET_BITRATE_MODE, &mode, sizeof mode))
    return dx_fail(err, DX_ERR_IO, "cannot set the MP3 bit rate of %s: %s", w->path, sf_strerror(w->sf));
  return DX_OK;
}

static dx_status writer_open_sf(dx_audio_writer *w, dx_errbuf *err) {
  w->sf = sf_open(w->tmp, SFM_WRITE, &w->si);
  if (!w->sf) return dx_fail(err, DX_ERR_IO, "cannot write %s: %s", w->path, sf_strerror(NULL));
  sf_command(w->sf, SFC_SET_CLIPPING, NULL, SF_TRUE); /* integer formats clip instead of wrapping */
  /* no PEAK chunk in float WAVs: it carries the time of writing, so the same
   * stems would never give the same bytes (checksums, caches, ETags) */
  sf_command(w->sf, SFC_SET_ADD_PEAK_CHUNK, NULL, SF_FALSE);
  if ((w->si.format & SF_FORMAT_TYPEMASK) == SF_FORMAT_MPEG) {
    dx_status s = set_mp3_rate(w, err);
    if (s != DX_OK) {
      sf_close(w->sf);
      w->sf = NULL;
      unlink(w->tmp);
      return s;
    }
  }
  return DX_OK;
}

/* Float to integer PCM as libsndfile's WAV writer does with clipping on
 * (round to nearest, full scale 2^15 or 2^23, clipped at the ends), done
 * here so that every container gets the same samples: libsndfile's FLAC
 * encoder rounds its own way (one step off in most samples). Left-justified
 * in int32, the layout sf_writef_int takes for any bit depth. */
static void to_int(const float *x, int *out, size_t n, int bits) {
  const float full = bits == 24 ? 8388608.0f : 32768.0f;
  const int shift = 32 - bits;
  for (size_t i = 0; i < n; i++) {
    float v = x[i] * full;
    long q = v >= full - 1.0f ? (long)full - 1 : v <= -full ? -(long)full : lrintf(v);
    out[i] = (int)((unsigned)q << shift);
  }
}

static dx_status write_sf(dx_audio_writer *w, const float *block, size_t k, dx_errbuf *err) {
  sf_count_t done;
  if (w->int_bits) {
    to_int(block, w->int_block, k * (size_t)w->si.channels, w->int_bits);
    done = sf_writef_int(w->sf, w->int_block, (sf_count_t)k);
  } else {
    done = sf_writef_float(w->sf, block, (sf_count_t)k);
  }
  return done == (sf_count_t)k ? DX_OK : dx_fail(err, DX_ERR_IO, "write failed: %s", sf_strerror(w->sf));
}

dx_status dx_audio_writer_set_mp3_kbps(dx_audio_writer *w, int kbps, dx_errbuf *err) {
  if (kbps < 8 || kbps > 320) return dx_fail(err, DX_ERR_INVALID, "MP3 bit rate %d kbps is not in 8..320", kbps);
  if (w->frames) return dx_fail(err, DX_ERR_INVALID, "the MP3 bit rate is set before the first samples");
  w->mp3_kbps = kbps;
  return w->sf && (w->si.format & SF_FORMAT_TYPEMASK) == SF_FORMAT_MPEG ? set_mp3_rate(w, err) : DX_OK;
}

static void writer_free(dx_audio_writer *w) {
  if (w->fd >= 0) close(w->fd);
  free(w->int_block);
  free(w->block);
  free(w);
}

dx_status dx_audio_writer_open(const char *path, int channels, int samplerate, dx_audio_encoding enc, int flags,
                               dx_audio_writer **out, dx_errbuf *err) {
  *out = NULL;
  int fmt;
  if (enc_format(enc, &fmt) != DX_OK) return dx_fail(err, DX_ERR_INVALID, "unknown encoding %d", (int)enc);
  if (channels <= 0 || channels > 64 || samplerate <= 0) return dx_fail(err, DX_ERR_INVALID, "bad channel count or rate");
  dx_audio_writer *w = calloc(1, sizeof *w);
  if (!w) return DX_ERR_NOMEM;
  w->fd = -1;
  w->block = malloc((size_t)DX_AUDIO_BLOCK * (size_t)channels * sizeof *w->block);
  int sub = fmt & SF_FORMAT_SUBMASK;
  w->int_bits = sub == SF_FORMAT_PCM_16 ? 16 : sub == SF_FORMAT_PCM_24 ? 24 : 0;
  if (w->int_bits) w->int_block = malloc((size_t)DX_AUDIO_BLOCK * (size_t)channels * sizeof *w->int_block);
  if (!w->block || (w->int_bits && !w->int_block)) {
    writer_free(w);
    return DX_ERR_NOMEM;
  }
  snprintf(w->path, sizeof w->path, "%s", path);
  dx_tmp_path(w->tmp, sizeof w->tmp, path);
  w->si.channels = channels;
  w->si.samplerate = samplerate;
  w->si.format = fmt;
  w->mp3_kbps = DX_MP3_KBPS_DEFAULT;
  w->rescale = (flags & DX_WRITER_RESCALE) != 0;
  w->clamp = (flags & DX_WRITER_CLAMP) != 0;
  w->tanh = (flags & DX_WRITER_TANH) != 0;
  if (w->rescale + w->clamp + w->tanh > 1) {
    writer_free(w);
    return dx_fail(err, DX_ERR_INVALID, "one clip mode at a time");
  }
  dx_status s;
  if (w->rescale) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *sl = strrchr(dir, '/');
    if (sl) *sl = 0;
    else snprintf(dir, sizeof dir, ".");
    w->fd = dx_scratch_open(dir, "stem");
    s = w->fd < 0 ? dx_fail(err, DX_ERR_IO, "cannot create a scratch file next to %s: %s", path, strerror(errno))
                  : DX_OK;
  } else {
    s = writer_open_sf(w, err);
  }
  if (s != DX_OK) {
    writer_free(w);
    return s;
  }
  *out = w;
  return DX_OK;
}

dx_status dx_audio_writer_write(dx_audio_writer *w, const float *planar, size_t stride, size_t n, dx_errbuf *err) {
  const size_t ch = (size_t)w->si.channels;
  for (size_t done = 0; done < n;) {
    size_t k = n - done < DX_AUDIO_BLOCK ? n - done : DX_AUDIO_BLOCK;
    for (size_t i = 0; i < k; i++)
      for (size_t c = 0; c < ch; c++) w->block[i * ch + c] = planar[c * stride + done + i];
    if (w->clamp)
      for (size_t i = 0; i < k * ch; i++) w->block[i] = fminf(fmaxf(w->block[i], -0.99f), 0.99f);
    else if (w->tanh)
      for (size_t i = 0; i < k * ch; i++) w->block[i] = tanhf(w->block[i]);
    if (w->rescale) {
      for (size_t i = 0; i < k * ch; i++) w->peak = fmaxf(w->peak, fabsf(w->block[i]));
      if (dx_write_all(w->fd, w->block, k * ch * sizeof *w->block))
        return dx_fail(err, DX_ERR_IO, "cannot write the scratch file for %s: %s", w->path, strerror(errno));
    } else {
      dx_status st = write_sf(w, w->block, k, err);
      if (st != DX_OK) return st;
    }
    done += k;
    w->frames += k;
  }
  return DX_OK;
}


void dx_audio_writer_abort(dx_audio_writer *w) {
  if (!w) return;
  if (w->sf) sf_close(w->sf);
  unlink(w->tmp);
  writer_free(w);
}

dx_status dx_audio_writer_close(dx_audio_writer *w, dx_errbuf *err) {
  dx_status s = DX_OK;
  if (w->rescale) {
    /* the whole file's peak is known now: scale as the official save_audio */
    float g = 1.0f;
    int scale = 1.01f * w->peak > 1.0f;
    if (scale) g = 1.0f / (1.01f * w->peak);
    const size_t ch = (size_t)w->si.channels;
    s = writer_open_sf(w, err);
    for (size_t done = 0; s == DX_OK && done < w->frames;) {
      size_t k = w->frames - done < DX_AUDIO_BLOCK ? w->frames - done : DX_AUDIO_BLOCK;
      if (dx_pread_all(w->fd, w->block, k * ch * sizeof *w->block, (off_t)(done * ch * sizeof *w->block))) {
        s = dx_fail(err, DX_ERR_IO, "cannot read back the scratch file for %s", w->path);
        break;
      }
      if (scale)
        for (size_t i = 0; i < k * ch; i++) w->block[i] *= g;
      s = write_sf(w, w->block, k, err);
      done += k;
    }
  }
  if (w->sf) {
    if (sf_close(w->sf) && s == DX_OK) s = dx_fail(err, DX_ERR_IO, "closing %s failed", w->path);
    w->sf = NULL;
  }
  if (s == DX_OK && rename(w->tmp, w->path))
    s = dx_fail(err, DX_ERR_IO, "cannot rename into %s: %s", w->path, strerror(errno));
  if (s != DX_OK) unlink(w->tmp);
  writer_free(w);
  return s;
}

/* ---- reader ---- */

struct dx_audio_reader {
  SNDFILE *sf;          /* in place: the file itself */
  int fd;               /* else: scratch file of interleaved float32 at the wanted rate */
  int src_channels;     /* channels in the file (or scratch) */
  int channels;         /* channels given out */
  size_t frames;
  float *block;         /* [DX_AUDIO_BLOCK][src_channels] */
};

size_t dx_audio_reader_frames(const dx_audio_reader *r) { return r->frames; }

void dx_audio_reader_close(dx_audio_reader *r) {
  if (!r) return;
  if (r->sf) sf_close(r->sf);
  if (r->fd >= 0) close(r->fd);
  free(r->block);
  free(r);
}

static int seekable_in_place(int fmt) {
  switch (fmt & SF_FORMAT_TYPEMASK) {
  case SF_FORMAT_WAV: case SF_FORMAT_WAVEX: case SF_FORMAT_RF64: case SF_FORMAT_AIFF: case SF_FORMAT_FLAC: return 1;
  }
  return 0;
}

/* Decode sf to the end, resampling from si->samplerate to rate when they
 * differ, into r->fd; frames as dx_audio_resample gives them. */
static dx_status decode_to_scratch(dx_audio_reader *r, SNDFILE *sf, const SF_INFO *si, int rate, dx_errbuf *err) {
  const size_t ch = (size_t)si->channels, in_frames = (size_t)si->frames;
  const int convert = rate != si->samplerate;
  size_t olen = convert ? (size_t)(in_frames * ((double)rate / si->samplerate) + 0.5) : in_frames;
  size_t ocap = 2 * DX_AUDIO_BLOCK + 64;
  float *obuf = malloc(ocap * ch * sizeof *obuf);
  soxr_t sx = NULL;
  if (!obuf) return DX_ERR_NOMEM;
  if (convert) {
    soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
    soxr_quality_spec_t q = soxr_quality_spec(SOXR_HQ, 0);
    soxr_error_t e = NULL;
    sx = soxr_create(si->samplerate, rate, (unsigned)ch, &e, &io, &q, NULL);
    if (!sx || e) {
      free(obuf);
      return dx_fail(err, DX_ERR_INTERNAL, "resampling failed: %s", e ? e : "no resampler");
    }
  }
  dx_status s = DX_OK;
  size_t got = 0, put = 0;
  for (int last = 0; s == DX_OK && put < olen;) {
    size_t take = 0;
    if (!last) {
      sf_count_t n = got < in_frames ? sf_readf_float(sf, r->block, DX_AUDIO_BLOCK) : 0;
      take = n > 0 ? (size_t)n : 0;
      if (got + take > in_frames) take = in_frames - got; /* never past the declared length */
      got += take;
      if (take == 0) last = 1;
    }
    const float *out = r->block;
    size_t produced = take;
    if (convert) {
      /* input NULL flushes what the filter still holds */
      soxr_error_t e = soxr_process(sx, last ? NULL : r->block, take, NULL, obuf, ocap, &produced);
      if (e) s = dx_fail(err, DX_ERR_INTERNAL, "resampling failed: %s", e);
      out = obuf;
      if (last && produced == 0) break;
    } else if (last) {
      break;
    }
    if (produced > olen - put) produced = olen - put;
    if (s == DX_OK && produced && dx_write_all(r->fd, out, produced * ch * sizeof *out))
      s = dx_fail(err, DX_ERR_IO, "cannot write the scratch file: %s", strerror(errno));
    put += produced;
  }
  if (s == DX_OK) {
    int e = sf_error(sf);
    if (e != SF_ERR_NO_ERROR) s = dx_fail(err, DX_ERR_CORRUPT, "decoding failed: %s", sf_error_number(e));
    else if (got < in_frames)
      s = dx_fail(err, DX_ERR_CORRUPT, "damaged audio: %zu of %zu frames decodable", got, in_frames);
  }
  /* a last sample or two the resampler did not give: zeros, as dx_audio_resample */
  if (s == DX_OK && put < olen) {
    memset(obuf, 0, ocap * ch * sizeof *obuf);
    while (s == DX_OK && put < olen) {
      size_t k = olen - put < ocap ? olen - put : ocap;
      if (dx_write_all(r->fd, obuf, k * ch * sizeof *obuf)) s = dx_fail(err, DX_ERR_IO, "cannot write the scratch file");
      put += k;
    }
  }
  soxr_delete(sx);
  free(obuf);
  r->frames = olen;
  return s;
}

dx_status dx_audio_reader_open(const char *path, double max_seconds, int samplerate, int channels, const char *tmp_dir,
                               dx_audio_reader **out, dx_errbuf *err) {
  *out = NULL;
  if (samplerate <= 0 || channels <= 0 || channels > 64) return dx_fail(err, DX_ERR_INVALID, "bad rate or channels");
  SNDFILE *sf;
  SF_INFO si;
  dx_status s = dx_audio_open_path(path, &sf, &si, err);
  if (s != DX_OK) return s;
  if ((s = dx_audio_check_info(&si, NULL, err)) == DX_OK && max_seconds > 0 &&
      (double)si.frames / si.samplerate > max_seconds)
    s = dx_fail(err, DX_ERR_TOO_LONG, "audio is %.0f s long, the limit is %.0f s", (double)si.frames / si.samplerate,
                max_seconds);
  dx_audio_reader *r = s == DX_OK ? calloc(1, sizeof *r) : NULL;
  if (s == DX_OK && !r) s = DX_ERR_NOMEM;
  if (s == DX_OK) {
    r->fd = -1;
    r->src_channels = si.channels;
    r->channels = channels;
    r->block = malloc((size_t)DX_AUDIO_BLOCK * (size_t)si.channels * sizeof *r->block);
    if (!r->block) s = DX_ERR_NOMEM;
  }
  if (s == DX_OK && si.samplerate == samplerate && seekable_in_place(si.format)) {
    r->sf = sf;
    r->frames = (size_t)si.frames;
    *out = r;
    return DX_OK;
  }
  if (s == DX_OK) {
    r->fd = dx_scratch_open(tmp_dir, "audio");
    if (r->fd < 0) s = dx_fail(err, DX_ERR_IO, "cannot create a scratch file in %s: %s", tmp_dir, strerror(errno));
  }
  if (s == DX_OK) s = decode_to_scratch(r, sf, &si, samplerate, err);
  sf_close(sf);
  if (s != DX_OK) {
    dx_audio_reader_close(r);
    return s;
  }
  *out = r;
  return DX_OK;
}

/* Source frames of block[i * sc + c] -> dst planar, converting channels as
 * dx_audio_remix (mono duplicated, extra channels dropped, or averaged into
 * mono, the last repeated when more are wanted). */
static void remix_block(const float *block, int sc, int oc, size_t k, float *dst, size_t stride) {
  for (int c = 0; c < oc; c++) {
    float *d = dst + (size_t)c * stride;
    if (oc == 1 && sc > 1) {
      for (size_t i = 0; i < k; i++) d[i] = 0.0f;
      for (int j = 0; j < sc; j++)
        for (size_t i = 0; i < k; i++) d[i] += block[i * (size_t)sc + (size_t)j];
      float inv = 1.0f / (float)sc;
      for (size_t i = 0; i < k; i++) d[i] *= inv;
    } else {
      int src = c < sc ? c : sc - 1;
      for (size_t i = 0; i < k; i++) d[i] = block[i * (size_t)sc + (size_t)src];
    }
  }
}

dx_status dx_audio_reader_read(dx_audio_reader *r, size_t offset, size_t n, float *dst, size_t stride,
                               dx_errbuf *err) {
  if (offset > r->frames || n > r->frames - offset) return dx_fail(err, DX_ERR_INVALID, "read past the end");
  const size_t sc = (size_t)r->src_channels;
  if (r->sf && n && sf_seek(r->sf, (sf_count_t)offset, SEEK_SET) != (sf_count_t)offset)
    return dx_fail(err, DX_ERR_CORRUPT, "cannot seek to frame %zu: %s", offset, sf_strerror(r->sf));
  for (size_t done = 0; done < n;) {
    size_t k = n - done < DX_AUDIO_BLOCK ? n - done : DX_AUDIO_BLOCK;
    if (r->sf) {
      if (sf_readf_float(r->sf, r->block, (sf_count_t)k) != (sf_count_t)k)
        return dx_fail(err, DX_ERR_CORRUPT, "damaged audio: cannot decode frames %zu..%zu", offset + done,
                       offset + done + k);
    } else if (dx_pread_all(r->fd, r->block, k * sc * sizeof *r->block,
                         (off_t)((offset + done) * sc * sizeof *r->block))) {
      return dx_fail(err, DX_ERR_IO, "cannot read the scratch file");
    }
    remix_block(r->block, r->src_channels, r->channels, k, dst + done, stride);
    done += k;
  }
  return DX_OK;
}
