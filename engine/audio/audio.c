/* audio.c: decoding, probing and writing audio with libsndfile (see dx_audio.h).
 * Thread-safe: no shared state. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sndfile.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dx_audio.h"
#include "audio_internal.h"



static void describe_format(int fmt, dx_audio_info *info) {
  const char *f = "other", *s = "other";
  switch (fmt & SF_FORMAT_TYPEMASK) {
  case SF_FORMAT_WAV: case SF_FORMAT_WAVEX: case SF_FORMAT_RF64: f = "wav"; break;
  case SF_FORMAT_FLAC: f = "flac"; break;
  case SF_FORMAT_OGG: f = "ogg"; break;
  case SF_FORMAT_MPEG: f = "mp3"; break;
  case SF_FORMAT_AIFF: f = "aiff"; break;
  }
  switch (fmt & SF_FORMAT_SUBMASK) {
  case SF_FORMAT_PCM_S8: case SF_FORMAT_PCM_U8: s = "pcm8"; break;
  case SF_FORMAT_PCM_16: s = "pcm16"; break;
  case SF_FORMAT_PCM_24: s = "pcm24"; break;
  case SF_FORMAT_PCM_32: s = "pcm32"; break;
  case SF_FORMAT_FLOAT: s = "float"; break;
  case SF_FORMAT_DOUBLE: s = "double"; break;
  case SF_FORMAT_VORBIS: s = "vorbis"; break;
  case SF_FORMAT_OPUS: s = "opus"; break;
  case SF_FORMAT_MPEG_LAYER_III: s = "mp3"; break;
  }
  snprintf(info->format, sizeof info->format, "%s", f);
  snprintf(info->subtype, sizeof info->subtype, "%s", s);
}

static uint32_t le32(const unsigned char *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }

/* libsndfile opens a WAV whose data chunk claims more bytes than the file
 * holds and quietly reads what is there; a truncated upload must be refused,
 * so walk the RIFF chunks and compare the declared data size with the bytes
 * present. head holds the file's first bytes, total its whole length. */
static dx_status check_riff(const unsigned char *head, size_t head_len, uint64_t total, dx_errbuf *err) {
  if (head_len < 12 || memcmp(head, "RIFF", 4) || memcmp(head + 8, "WAVE", 4)) return DX_OK;
  uint64_t pos = 12;
  while (pos + 8 <= head_len) {
    uint32_t size = le32(head + pos + 4);
    if (!memcmp(head + pos, "data", 4)) {
      /* 0 and 0xFFFFFFFF are what streaming writers leave when the length was unknown. */
      if (size != 0 && size != 0xFFFFFFFFu && pos + 8 + (uint64_t)size > total)
        return dx_fail(err, DX_ERR_CORRUPT, "truncated WAV: data chunk declares %u bytes, %llu present", size,
                       (unsigned long long)(total - pos - 8));
      return DX_OK;
    }
    pos += 8 + (uint64_t)size + (size & 1);
  }
  return DX_OK;
}

/* Decode every frame of an open file to prove it is intact. With out, the
 * samples are stored planar into out->data, reused when *cap (floats)
 * holds them and grown otherwise; fn (may be NULL) sees every block while
 * it is still in cache. */
static dx_status decode_all(SNDFILE *sf, const SF_INFO *si, dx_audio *out, size_t *cap, dx_audio_block_fn fn,
                            void *ud, dx_errbuf *err) {
  size_t ch = (size_t)si->channels, frames = (size_t)si->frames, got = 0;
  /* 16-bit PCM is read as shorts and scaled here: libsndfile's own
   * short-to-float loop costs more than the rest of the decoding; the scale
   * is the one it uses (1 / 0x8000, exact), so the floats are the same */
  int pcm16 = (si->format & SF_FORMAT_SUBMASK) == SF_FORMAT_PCM_16;
  float *block = malloc(DX_AUDIO_BLOCK * ch * sizeof(float));
  short *sblock = pcm16 ? malloc(DX_AUDIO_BLOCK * ch * sizeof(short)) : NULL;
  if (!block || (pcm16 && !sblock)) {
    free(block);
    free(sblock);
    return DX_ERR_NOMEM;
  }
  float *planar = NULL;
  dx_audio hdr = {NULL, si->channels, si->samplerate, frames}; /* what fn sees when nothing is kept */
  if (out) {
    size_t need = (frames ? frames : 1) * ch;
    if (!out->data || *cap < need) {
      free(out->data);
      out->data = NULL;
      *cap = 0;
      if (!(out->data = malloc(need * sizeof(float)))) {
        free(block);
        free(sblock);
        return dx_fail(err, DX_ERR_NOMEM, "no memory for %zu frames", frames);
      }
      *cap = need;
    }
    planar = out->data;
    out->channels = si->channels;
    out->samplerate = si->samplerate;
    out->frames = frames;
  }
  dx_status s = DX_OK;
  for (;;) {
    sf_count_t n = pcm16 ? sf_readf_short(sf, sblock, DX_AUDIO_BLOCK) : sf_readf_float(sf, block, DX_AUDIO_BLOCK);
    if (n <= 0) break;
    if (pcm16)
      for (size_t i = 0; i < (size_t)n * ch; i++) block[i] = (float)sblock[i] * (1.0f / 32768.0f);
    size_t take = (size_t)n;
    if (got + take > frames) take = frames - got; /* never past the declared length */
    if (planar) {
      if (ch == 2) {
        float *l = planar + got, *r = planar + frames + got;
        for (size_t i = 0; i < take; i++) l[i] = block[2 * i], r[i] = block[2 * i + 1];
      } else {
        for (size_t i = 0; i < take; i++)
          for (size_t c = 0; c < ch; c++) planar[c * frames + got + i] = block[i * ch + c];
      }
    }
    if (fn && (s = fn(ud, out ? out : &hdr, block, got, take)) != DX_OK) break;
    got += take;
    if (got >= frames) break;
  }
  free(block);
  free(sblock);
  if (s != DX_OK) return s; /* fn's own status and message */
  int e = sf_error(sf);
  if (e != SF_ERR_NO_ERROR || got < frames) {
    if (e != SF_ERR_NO_ERROR) return dx_fail(err, DX_ERR_CORRUPT, "decoding failed: %s", sf_error_number(e));
    return dx_fail(err, DX_ERR_CORRUPT, "damaged audio: %zu of %zu frames decodable", got, frames);
  }
  return DX_OK;
}

dx_status dx_audio_check_info(const SF_INFO *si, dx_audio_info *info, dx_errbuf *err) {
  if (si->channels <= 0 || si->channels > 64 || si->samplerate <= 0 || si->samplerate > 768000)
    return dx_fail(err, DX_ERR_CORRUPT, "implausible header: %d channels at %d Hz", si->channels, si->samplerate);
  if (si->frames <= 0) return dx_fail(err, DX_ERR_EMPTY, "no audio frames");
  if ((uint64_t)si->frames > ((uint64_t)SIZE_MAX / sizeof(float)) / (uint64_t)si->channels)
    return dx_fail(err, DX_ERR_TOO_LARGE, "too many frames");
  if (info) {
    memset(info, 0, sizeof *info);
    info->channels = si->channels;
    info->samplerate = si->samplerate;
    info->frames = (size_t)si->frames;
    info->duration = (double)si->frames / si->samplerate;
    describe_format(si->format, info);
  }
  return DX_OK;
}

static dx_status open_error(SNDFILE *sf, dx_errbuf *err) {
  int e = sf_error(sf);
  /* libsndfile says "unrecognised format" for what is not audio at all;
   * anything else about a file it knows is damage. */
  if (e == SF_ERR_UNRECOGNISED_FORMAT)
    return dx_fail(err, DX_ERR_UNSUPPORTED, "not a supported audio file (WAV, FLAC, OGG/Vorbis, MP3)");
  if (e == SF_ERR_SYSTEM) return dx_fail(err, DX_ERR_IO, "cannot open: %s", sf_strerror(NULL));
  return dx_fail(err, DX_ERR_CORRUPT, "damaged audio file: %s", sf_error_number(e));
}

dx_status dx_audio_open_path(const char *path, SNDFILE **sf, SF_INFO *si, dx_errbuf *err) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return dx_fail(err, errno == ENOENT ? DX_ERR_NOT_FOUND : DX_ERR_IO, "cannot open %s: %s", path,
                             strerror(errno));
  struct stat st;
  unsigned char head[65536];
  ssize_t hl = pread(fd, head, sizeof head, 0);
  if (fstat(fd, &st) || hl < 0) { close(fd); return dx_fail(err, DX_ERR_IO, "cannot read %s", path); }
  if (hl == 0) { close(fd); return dx_fail(err, DX_ERR_EMPTY, "empty file"); }
  dx_status s = check_riff(head, (size_t)hl, (uint64_t)st.st_size, err);
  if (s != DX_OK) { close(fd); return s; }
  memset(si, 0, sizeof *si);
  *sf = sf_open_fd(fd, SFM_READ, si, 1);
  if (!*sf) return open_error(NULL, err);
  return DX_OK;
}

dx_status dx_audio_probe(const char *path, dx_audio_info *info, dx_errbuf *err) {
  SNDFILE *sf;
  SF_INFO si;
  dx_status s = dx_audio_open_path(path, &sf, &si, err);
  if (s != DX_OK) return s;
  s = dx_audio_check_info(&si, info, err);
  if (s == DX_OK) s = decode_all(sf, &si, NULL, NULL, NULL, NULL, err);
  sf_close(sf);
  return s;
}

struct dx_audio_file {
  SNDFILE *sf;
  SF_INFO si;
  int decoded;
};

dx_status dx_audio_file_open(const char *path, double max_seconds, dx_audio_file **out, dx_audio_info *info,
                             dx_errbuf *err) {
  *out = NULL;
  dx_audio_file *f = calloc(1, sizeof *f);
  if (!f) return dx_fail(err, DX_ERR_NOMEM, "out of memory");
  dx_status s = dx_audio_open_path(path, &f->sf, &f->si, err);
  if (s != DX_OK) {
    free(f);
    return s;
  }
  s = dx_audio_check_info(&f->si, info, err);
  if (s == DX_OK && max_seconds > 0 && (double)f->si.frames / f->si.samplerate > max_seconds)
    s = dx_fail(err, DX_ERR_TOO_LONG, "audio is %.0f s long, the limit is %.0f s",
                (double)f->si.frames / f->si.samplerate, max_seconds);
  if (s != DX_OK) {
    dx_audio_file_close(f);
    return s;
  }
  *out = f;
  return DX_OK;
}

dx_status dx_audio_file_decode(dx_audio_file *f, dx_audio *out, size_t *cap, dx_audio_block_fn fn, void *ud,
                               dx_errbuf *err) {
  if (out) out->frames = 0;
  if (f->decoded) return dx_fail(err, DX_ERR_INVALID, "the file was decoded already");
  f->decoded = 1;
  dx_status s = decode_all(f->sf, &f->si, out, cap, fn, ud, err);
  if (s != DX_OK && out) out->frames = 0;
  return s;
}

void dx_audio_file_close(dx_audio_file *f) {
  if (!f) return;
  sf_close(f->sf);
  free(f);
}

dx_status dx_audio_decode(const char *path, double max_seconds, dx_audio *out, size_t *cap, dx_audio_block_fn fn,
                          void *ud, dx_errbuf *err) {
  dx_audio_file *f;
  out->frames = 0;
  dx_status s = dx_audio_file_open(path, max_seconds, &f, NULL, err);
  if (s != DX_OK) return s;
  s = dx_audio_file_decode(f, out, cap, fn, ud, err);
  dx_audio_file_close(f);
  return s;
}

dx_status dx_audio_load(const char *path, double max_seconds, dx_audio *out, dx_errbuf *err) {
  size_t cap = 0;
  memset(out, 0, sizeof *out);
  dx_status s = dx_audio_decode(path, max_seconds, out, &cap, NULL, NULL, err);
  if (s != DX_OK) dx_audio_free(out);
  return s;
}

/* Virtual I/O over a memory buffer, for dx_audio_probe_mem. */
typedef struct {
  const unsigned char *p;
  sf_count_t len, pos;
} membuf;

static sf_count_t vm_len(void *u) { return ((membuf *)u)->len; }
static sf_count_t vm_seek(sf_count_t off, int whence, void *u) {
  membuf *m = u;
  sf_count_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? m->pos : m->len;
  sf_count_t np = base + off;
  if (np < 0 || np > m->len) return -1;
  return m->pos = np;
}
static sf_count_t vm_read(void *dst, sf_count_t n, void *u) {
  membuf *m = u;
  if (n > m->len - m->pos) n = m->len - m->pos;
  if (n <= 0) return 0;
  memcpy(dst, m->p + m->pos, (size_t)n);
  m->pos += n;
  return n;
}
static sf_count_t vm_write(const void *src, sf_count_t n, void *u) { (void)src; (void)n; (void)u; return 0; }
static sf_count_t vm_tell(void *u) { return ((membuf *)u)->pos; }

dx_status dx_audio_probe_mem(const void *buf, size_t len, dx_audio_info *info, dx_errbuf *err) {
  if (len == 0) return dx_fail(err, DX_ERR_EMPTY, "empty file");
  dx_status s = check_riff(buf, len < 65536 ? len : 65536, len, err);
  if (s != DX_OK) return s;
  SF_VIRTUAL_IO vio = {vm_len, vm_seek, vm_read, vm_write, vm_tell};
  membuf m = {buf, (sf_count_t)len, 0};
  SF_INFO si;
  memset(&si, 0, sizeof si);
  SNDFILE *sf = sf_open_virtual(&vio, SFM_READ, &si, &m);
  if (!sf) return open_error(NULL, err);
  s = dx_audio_check_info(&si, info, err);
  if (s == DX_OK) s = decode_all(sf, &si, NULL, NULL, NULL, NULL, err);
  sf_close(sf);
  return s;
}

void dx_audio_free(dx_audio *a) {
  if (!a) return;
  free(a->data);
  memset(a, 0, sizeof *a);
}

const char *dx_audio_encoding_ext(dx_audio_encoding enc) {
  switch (enc) {
  case DX_ENC_FLAC: case DX_ENC_FLAC24: return "flac";
  case DX_ENC_MP3: return "mp3";
  default: return "wav";
  }
}

dx_status dx_audio_write(const char *path, const float *planar, int channels, size_t frames, int samplerate,
                         dx_audio_encoding enc, dx_errbuf *err) {
  dx_audio_writer *w = NULL;
  dx_status s = dx_audio_writer_open(path, channels, samplerate, enc, 0, &w, err);
  if (s != DX_OK) return s;
  if ((s = dx_audio_writer_write(w, planar, frames, frames, err)) != DX_OK) {
    dx_audio_writer_abort(w);
    return s;
  }
  return dx_audio_writer_close(w, err);
}
