"""JSON files of the experiments: read leniently (a missing or broken file is ``{}``), written atomically."""
import json
import os
import os.path as osp


def read_json(path: str) -> dict:
    """The JSON object in ``path``; ``{}`` when the file is missing or not valid JSON."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def write_json(path: str, data) -> None:
    """Write ``data`` to ``path`` through a temporary file (a reader never sees half a file); directories are
    created."""
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    tmp = f'{path}.tmp'
    with open(tmp, 'w') as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)
