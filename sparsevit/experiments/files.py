"""JSON files of the experiments: read leniently (a missing or broken file is ``{}``), written atomically."""
import json

from ..utils.files import write_json

__all__ = ['read_json', 'write_json']


def read_json(path: str) -> dict:
    """The JSON object in ``path``; ``{}`` when the file is missing or not valid JSON."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


