/* audio_internal.h: helpers shared by the files of engine/audio (not a
 * public interface). */
#ifndef DX_AUDIO_INTERNAL_H
#define DX_AUDIO_INTERNAL_H

#include <sndfile.h>

#include "dx_audio.h"

#define DX_AUDIO_BLOCK 8192 /* frames decoded or written per call */

/* Open path for reading after checking a WAV's RIFF sizes; *sf owns the fd. */
dx_status dx_audio_open_path(const char *path, SNDFILE **sf, SF_INFO *si, dx_errbuf *err);
/* Refuse implausible headers and empty files; fills info when not NULL. */
dx_status dx_audio_check_info(const SF_INFO *si, dx_audio_info *info, dx_errbuf *err);

#endif
