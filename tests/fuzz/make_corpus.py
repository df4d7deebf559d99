#!/usr/bin/env python3
"""Write the small seed corpora under tests/fuzz/corpus/<target>/.

Run from anywhere: python3 tests/fuzz/make_corpus.py. Uses only the standard
library, plus sox (when installed) for the FLAC and Ogg seeds. Seeds stay
small (a few KiB) so they can live in the repository."""
import math
import os
import shutil
import struct
import subprocess
import tempfile
import wave

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def tone_wav(path, frames=400, rate=8000, channels=1, width=2):
    with wave.open(path, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        pcm = bytearray()
        for i in range(frames):
            v = int(8000 * math.sin(2 * math.pi * 440 * i / rate))
            for _ in range(channels):
                pcm += struct.pack("<h", v) if width == 2 else struct.pack("<B", (v >> 8) + 128)
        w.writeframes(bytes(pcm))


def main():
    # query strings
    for i, q in enumerate(["page=1&page_size=20", "title=Hello+World&artist=Caf%C3%A9", "tag=a&tag=b&&x",
                           "a=%zz", "%=&=%41", "status=queued&page=99999999999"]):
        put("fuzz_query", "seed%d" % i, q)
    # JSON bodies
    for i, j in enumerate(['{"title":"x","bpm":120.5,"key":"A minor","tags":["a","b"]}', '{"track_id":null}',
                           '[1,2]', '{"a":{"b":[true,false,null,1e5,-0.5,"\\u00e9"]}}', '{"a":', "'x'"]):
        put("fuzz_json_body", "seed%d" % i, j)
    # multipart: first byte is the chunk size
    b = "fuzzB0undary"
    form = ("--%s\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nSong\r\n"
            "--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n"
            "Content-Type: audio/wav\r\n\r\nRIFF....WAVE\r\n--%s--\r\n") % (b, b, b)
    put("fuzz_multipart", "seed0", b"\x07" + form.encode())
    put("fuzz_multipart", "seed1", b"\x00" + ("preamble\r\n--%s \r\nContent-Disposition: form-data; name=x\r\n\r\n"
                                              "\r\n--%s--" % (b, b)).encode())
    put("fuzz_multipart", "seed2", b"\x03multipart/form-data; boundary=\"a b\"")
    put("fuzz_multipart", "seed3", b"\x01" + form.encode()[:60])
    # audio
    tmp = tempfile.mkdtemp()
    try:
        wav = os.path.join(tmp, "t.wav")
        tone_wav(wav)
        data = open(wav, "rb").read()
        put("fuzz_audio_probe", "tone.wav", data)
        put("fuzz_audio_probe", "truncated.wav", data[: len(data) // 2])
        tone_wav(wav, frames=100, channels=2, width=1)
        put("fuzz_audio_probe", "u8_stereo.wav", open(wav, "rb").read())
        put("fuzz_audio_probe", "text.txt", "not audio at all\n")
        if shutil.which("sox"):
            tone_wav(wav)
            for ext in ("flac", "ogg"):
                out = os.path.join(tmp, "t." + ext)
                if subprocess.call(["sox", wav, out], stderr=subprocess.DEVNULL) == 0:
                    put("fuzz_audio_probe", "tone." + ext, open(out, "rb").read())
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
