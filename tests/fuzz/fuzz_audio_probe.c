/* fuzz_audio_probe.c: the upload's audio check (dx_audio_probe, here its
 * memory twin dx_audio_probe_mem: libsndfile virtual I/O over the bytes).
 * Accepted audio must report sane numbers. */
#include <stdint.h>
#include <stdlib.h>

#include "dx_audio.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  dx_audio_info info;
  dx_errbuf err;
  if (dx_audio_probe_mem(data, size, &info, &err) == DX_OK) {
    if (info.channels <= 0 || info.samplerate <= 0 || info.frames == 0 || !(info.duration > 0)) abort();
  }
  return 0;
}
