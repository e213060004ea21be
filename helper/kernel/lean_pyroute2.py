"""pyroute2 without its package __init__, for the helper's start.

Importing any pyroute2 module runs pyroute2/__init__.py first, and that
imports all of pyroute2 (IPDB, NDB, conntrack, nftables, plan9, ...: 163
modules, where what the helper uses needs 99): about 0.1 s of CPU at every
start, before the helper can take its bus name (docs/development.md, *Suite
time*, ninth and tenth rounds). The helper imports what it uses from
pyroute2's submodules (`pyroute2.iproute`, `pyroute2.netlink...`), and its
start calls register() before any of them: the package is then registered
without running its __init__. A name asked of the package itself
(`from pyroute2 import NDB`) runs the __init__ after all, so every other use
still works, only without the saving.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading

PACKAGE = "pyroute2"
_INIT_LOCK = threading.Lock()


def register(name: str = PACKAGE) -> bool:
    """Put the package `name` in sys.modules with its __init__ not run yet,
    unless it is imported already or not found; True if it was put there."""
    if name in sys.modules:
        return False
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        return False  # not an installed package: the ordinary import says why
    module = importlib.util.module_from_spec(spec)  # __path__ set: submodules import
    loader = spec.loader

    def package_attribute(attribute: str) -> object:
        """A submodule not imported yet is imported alone (`from pyroute2
        import config`); any other name runs the __init__ first."""
        if importlib.util.find_spec(f"{name}.{attribute}") is not None:
            return importlib.import_module(f"{name}.{attribute}")
        with _INIT_LOCK:
            if module.__dict__.get("__getattr__") is package_attribute:
                del module.__dict__["__getattr__"]
                loader.exec_module(module)
        return getattr(module, attribute)

    module.__dict__["__getattr__"] = package_attribute
    sys.modules[name] = module
    return True
