"""Make the official Demucs importable: the folder in DEMUCS_PY (the
official package and its pure-Python dependencies, tools/official-demucs)
goes first on sys.path, and on a host whose Python has torch but no
torchaudio (a GPU host's) an empty torchaudio module stands in. openunmix,
which demucs imports for its Wiener filter, imports torchaudio at the top
but uses it only in its own file reading and resampling helpers, which
separation never calls; a call into the empty module would fail loudly
(AttributeError), never compute something else. Import this module before
demucs."""
import os
import sys
import types

if os.environ.get("DEMUCS_PY"):
    sys.path.insert(0, os.environ["DEMUCS_PY"])
try:
    import torchaudio  # noqa: F401
except ImportError:
    sys.modules["torchaudio"] = types.ModuleType("torchaudio")
