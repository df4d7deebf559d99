"""What the oracle scripts share (test tooling only)."""
import json
import os


def write_json(dst, obj):
    """obj as JSON into dst, atomically: a reader sees the whole file or none."""
    tmp = dst + ".tmp.%d" % os.getpid()
    with open(tmp, "w") as f:
        json.dump(obj, f)
    os.replace(tmp, dst)
