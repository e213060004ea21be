"""Standard modules that the CLI's imports name but a call seldom uses,
loaded on first use instead of at start-up.

dataclasses, which the contract's records are made with, imports inspect,
and inspect imports ast, dis, tokenize and linecache: 6-7 ms of CPU, a fifth
of a call's budget (issue 19), for the one function dataclasses calls on a
class that has no docstring. It imports copy too (and copy weakref: 0.7-1
ms) for asdict, astuple and deepcopy, which no call uses. Each module named
here is a stand-in in sys.modules until someone reads an attribute of it;
then the real module is imported and the stand-in takes on its contents, so
every caller gets exactly what a plain import would have given it.
"""

from __future__ import annotations

import importlib
import sys
import types


class _LoadedOnUse(types.ModuleType):
    """A module that imports itself when an attribute is first asked for."""

    def __getattr__(self, name: str) -> object:
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        real = importlib.import_module(self.__name__)
        self.__dict__.update(real.__dict__)
        return getattr(real, name)


def defer(*names: str) -> None:
    """Load each module on first use; one already imported is left as it is."""
    for name in names:
        if name not in sys.modules:
            sys.modules[name] = _LoadedOnUse(name)
