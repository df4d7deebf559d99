/* dx_audio.h: audio in and out through libsndfile (WAV, FLAC, OGG/Vorbis,
 * MP3), resampling through libsoxr.
 *
 * Samples are float32, planar: data[c * frames + i]. Every function is
 * thread-safe; buffers belong to the dx_audio that holds them and are
 * released by dx_audio_free. */
#ifndef DX_AUDIO_H
#define DX_AUDIO_H

#include <stddef.h>

#include "dx_error.h"

typedef struct {
  int channels;
  int samplerate;
  size_t frames;
  double duration;  /* seconds */
  char format[8];   /* "wav", "flac", "ogg", "mp3", "aiff", ... */
  char subtype[16]; /* "pcm16", "pcm24", "float", "vorbis", "mp3", ... */
} dx_audio_info;

typedef struct {
  float *data; /* planar [channels][frames], malloc'd */
  int channels;
  int samplerate;
  size_t frames;
} dx_audio;

/* Open and decode the whole file to check it, without keeping the samples.
 * DX_ERR_UNSUPPORTED: not audio libsndfile knows; DX_ERR_CORRUPT: damaged
 * or truncated (decoding fails or stops short of the declared length);
 * DX_ERR_EMPTY: no frames. Details in err. */
dx_status dx_audio_probe(const char *path, dx_audio_info *info, dx_errbuf *err);
/* The same over a memory buffer (used by the fuzz target). */
dx_status dx_audio_probe_mem(const void *buf, size_t len, dx_audio_info *info, dx_errbuf *err);

/* Decode a file. max_seconds > 0 refuses longer audio with DX_ERR_TOO_LONG
 * before decoding. On success out owns its data. */
dx_status dx_audio_load(const char *path, double max_seconds, dx_audio *out, dx_errbuf *err);
void dx_audio_free(dx_audio *a); /* NULL and zeroed structs are fine */

/* Called by dx_audio_decode for each decoded block while it is still in
 * cache: n frames starting at frame0, interleaved (block[i * channels + c]);
 * a (channels, samplerate, frames set before the first call) is the audio
 * being filled (data NULL when the samples are not kept, see
 * dx_audio_file_decode). A non-OK return stops decoding with that status. */
typedef dx_status (*dx_audio_block_fn)(void *ud, const dx_audio *a, const float *block, size_t frame0, size_t n);

/* dx_audio_load into a buffer kept between calls: out->data is reused when
 * *cap (floats, 0 with out->data NULL at first) holds the new file, else
 * freed and a larger one allocated (*cap updated). fn (may be NULL) sees
 * every block as it is decoded. The caller owns out->data throughout
 * (dx_audio_free); on failure out->frames is 0 and the buffer stays.
 * Statuses as dx_audio_load, or fn's (fn writes its own details). */
dx_status dx_audio_decode(const char *path, double max_seconds, dx_audio *out, size_t *cap, dx_audio_block_fn fn,
                          void *ud, dx_errbuf *err);

/* dx_audio_decode in two steps, for a caller that decides from the header
 * how to take the samples. open: the checks of dx_audio_decode up to the
 * header (DX_ERR_TOO_LONG past max_seconds when > 0, ...); fills info;
 * *out owns the open file until dx_audio_file_close. decode (once per
 * open): as dx_audio_decode; with out NULL the samples are not kept and
 * only fn sees them (cap unused), in a block buffer of fixed size, so a
 * file of any length decodes in bounded memory, with the same checks
 * (DX_ERR_CORRUPT for a damaged file or one that stops short of its
 * header's length, after fn has seen what could be decoded). */
typedef struct dx_audio_file dx_audio_file;
dx_status dx_audio_file_open(const char *path, double max_seconds, dx_audio_file **out, dx_audio_info *info,
                             dx_errbuf *err);
dx_status dx_audio_file_decode(dx_audio_file *f, dx_audio *out, size_t *cap, dx_audio_block_fn fn, void *ud,
                               dx_errbuf *err);
void dx_audio_file_close(dx_audio_file *f); /* NULL is a no-op */

/* Resample every channel to rate with soxr's high quality recipe; a copy
 * when the rate is already right. out is a new dx_audio. */
dx_status dx_audio_resample(const dx_audio *in, int rate, dx_audio *out, dx_errbuf *err);
/* Mean of the channels into a malloc'd mono buffer of in->frames samples. */
dx_status dx_audio_downmix(const dx_audio *in, float **mono);
/* Convert channel count as the official Demucs does: mono is duplicated,
 * more channels than wanted keep the first `channels` when wanted > 1, and
 * are averaged when wanted == 1. */
dx_status dx_audio_remix(const dx_audio *in, int channels, dx_audio *out);

typedef enum {
  DX_ENC_WAV_PCM16 = 0, /* default, like the official separate tool */
  DX_ENC_WAV_PCM24,
  DX_ENC_WAV_FLOAT,
  DX_ENC_FLAC,          /* 16-bit, or 24-bit with DX_ENC_FLAC24 */
  DX_ENC_FLAC24,
  DX_ENC_MP3,
} dx_audio_encoding;

/* File extension for an encoding ("wav", "flac", "mp3"). */
const char *dx_audio_encoding_ext(dx_audio_encoding enc);

/* Write planar samples to path atomically (temporary name, then rename).
 * Integer encodings clip to [-1, 1). Built on dx_audio_writer. */
dx_status dx_audio_write(const char *path, const float *planar, int channels, size_t frames, int samplerate,
                         dx_audio_encoding enc, dx_errbuf *err);


/* ---- streaming: files of any length in bounded memory ---- */

/* A file being written block by block: to path.tmp.PID, renamed to path by
 * dx_audio_writer_close. With DX_WRITER_RESCALE the samples go first to an
 * unlinked float32 scratch file next to path (disk, not memory) while their
 * peak is tracked; at close, when 1.01 * peak > 1 they are scaled by
 * 1 / (1.01 * peak) (the official save_audio "rescale" clip mode) and written
 * in the encoding. One thread at a time per writer. */
typedef struct dx_audio_writer dx_audio_writer;
#define DX_WRITER_RESCALE 1
/* The official save_audio's other clip modes, applied as samples arrive:
 * CLAMP to [-0.99, 0.99], TANH; with no clip flag, samples are written as
 * they are (integer encodings clip at full scale, float keeps them). */
#define DX_WRITER_CLAMP 2
#define DX_WRITER_TANH 4

/* DX_ERR_INVALID for a bad encoding, channel count or rate, DX_ERR_IO when
 * the file cannot be created; on success *out owns the open file. */
dx_status dx_audio_writer_open(const char *path, int channels, int samplerate, dx_audio_encoding enc, int flags,
                               dx_audio_writer **out, dx_errbuf *err);
/* MP3 files are written at a constant bit rate: DX_MP3_KBPS_DEFAULT (the
 * official separate tool's --mp3-bitrate default), or kbps (8..320, set
 * before the first write; brought into what the MPEG version of the file's
 * sample rate allows: 32..320 from 32 kHz up). No effect on other
 * encodings. DX_ERR_INVALID for a rate out of range or a late call. */
#define DX_MP3_KBPS_DEFAULT 320
dx_status dx_audio_writer_set_mp3_kbps(dx_audio_writer *w, int kbps, dx_errbuf *err);
/* Append n frames of planar[c * stride + i]. DX_ERR_IO on a failed write
 * (the writer then still needs close or abort). */
dx_status dx_audio_writer_write(dx_audio_writer *w, const float *planar, size_t stride, size_t n, dx_errbuf *err);
/* Finish the file and rename it into place; frees w whatever happens (on
 * failure nothing is left at path or the temporary names). */
dx_status dx_audio_writer_close(dx_audio_writer *w, dx_errbuf *err);
/* Drop the file being written and free w (NULL is a no-op). */
void dx_audio_writer_abort(dx_audio_writer *w);

/* A file read at any offset as planar float at a chosen rate and channel
 * count (converted as dx_audio_resample then dx_audio_remix). WAV, AIFF and
 * FLAC at the wanted rate are read in place with sf_seek; anything else (a
 * rate to convert, MP3, OGG) is decoded once, resampled with soxr's
 * streaming interface (the same high quality recipe), into an unlinked
 * float32 scratch file in tmp_dir, and read from there. One thread at a
 * time per reader. */
typedef struct dx_audio_reader dx_audio_reader;

/* Statuses as dx_audio_load (DX_ERR_TOO_LONG past max_seconds when > 0, ...),
 * DX_ERR_IO when the scratch file cannot be written. */
dx_status dx_audio_reader_open(const char *path, double max_seconds, int samplerate, int channels, const char *tmp_dir,
                               dx_audio_reader **out, dx_errbuf *err);
/* Frames at the converted rate. */
size_t dx_audio_reader_frames(const dx_audio_reader *r);
/* Frames [offset, offset + n) (offset + n <= frames) into dst[c * stride + i]
 * for the reader's channels. DX_ERR_CORRUPT when the file stops short or
 * fails to decode there. */
dx_status dx_audio_reader_read(dx_audio_reader *r, size_t offset, size_t n, float *dst, size_t stride,
                               dx_errbuf *err);
void dx_audio_reader_close(dx_audio_reader *r); /* NULL is a no-op */

#endif
