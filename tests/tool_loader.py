"""``load_tool(name)``: ``tools/NAME.py`` as a fresh module, so a test calls its functions and ``main(argv)`` in
this process (the tools are scripts, not a package)."""
import importlib.util
import os.path as osp
from types import ModuleType

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def load_tool(name: str) -> ModuleType:
    """tools/NAME.py executed as the module ``NAME_tool`` (not registered in ``sys.modules``)."""
    spec = importlib.util.spec_from_file_location(f'{name}_tool', osp.join(ROOT, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
