"""@frozen_record: a frozen dataclass whose generated methods are compiled when
first used, not at import.

@dataclass(frozen=True) compiles six functions for each class it makes
(__init__, __repr__, __eq__, __hash__, __setattr__, __delattr__): 0.4-1.5 ms a
class on the development machine, 5 ms for the contract's eight records, a fifth
of what a chadthrottle-ctl call costs over the interpreter's own start (issue 19),
and most calls use none of them (record_codec fills records without __init__,
`list --json` reads their fields). Here the class is a dataclass at once (fields,
defaults, fields(), is_dataclass, __match_args__), frozen by two small functions
written out below; __init__, __repr__, __eq__ and __hash__ are stand-ins until one
of them is first called on any instance: then @dataclass(frozen=True) makes a
twin of the class, the twin's four are put in the stand-ins' place (under a lock:
at every moment each name is a stand-in or the generated method) and the call goes
on to them. The finished class behaves as @dataclass(frozen=True) makes it
(tests/common/test_frozen_record.py compares them); its __dataclass_params__ say
so from the finish on.

Fields take plain defaults only (no field(...)): record_codec fills records from
those defaults, and the twin is made from them.
"""

from __future__ import annotations

import _thread
from dataclasses import MISSING, FrozenInstanceError, dataclass, fields

TYPE_CHECKING = False  # not typing's: importing typing costs a CLI call ~2 ms
if TYPE_CHECKING:
    from typing import Any, TypeVar, dataclass_transform

    T = TypeVar("T")
else:

    def dataclass_transform(**_kwargs: object) -> object:
        """What mypy reads: a frozen_record class is checked as a frozen dataclass."""
        return lambda function: function


_GENERATED = ("__init__", "__repr__", "__eq__", "__hash__")
_finishing = _thread.allocate_lock()


@dataclass_transform(frozen_default=True)
def frozen_record(cls: type[T]) -> type[T]:
    """cls as a frozen dataclass, its generated methods compiled on first use."""
    if not cls.__doc__:  # dataclass would write one from inspect.signature, of the unfinished class
        raise TypeError(f"{cls.__qualname__}: a frozen_record needs a docstring")
    dataclass(init=False, repr=False, eq=False)(cls)  # fields only: nothing compiled
    names: set[str] = set()
    for field in fields(cls):  # type: ignore[arg-type]
        if (field.default_factory is not MISSING or not (field.init and field.repr and field.compare)
                or field.hash is not None or field.kw_only or field.metadata):  # fmt: skip
            raise TypeError(
                f"{cls.__qualname__}.{field.name}: frozen_record takes plain fields only"
            )
        names.add(field.name)
    for name in (*_GENERATED, "__setattr__", "__delattr__"):
        if name in cls.__dict__:
            raise TypeError(
                f"{cls.__qualname__} defines {name}: @dataclass(frozen=True) would refuse it"
            )
    _freeze(cls, frozenset(names))
    for name in _GENERATED:
        _stand_in(cls, name)
    return cls


def _freeze(cls: type, names: frozenset[str]) -> None:
    """The __setattr__ and __delattr__ @dataclass(frozen=True) would compile."""

    def __setattr__(self: Any, name: str, value: object) -> None:
        if type(self) is cls or name in names:
            raise FrozenInstanceError(f"cannot assign to field {name!r}")
        super(cls, self).__setattr__(name, value)  # type: ignore[arg-type]

    def __delattr__(self: Any, name: str) -> None:
        if type(self) is cls or name in names:
            raise FrozenInstanceError(f"cannot delete field {name!r}")
        super(cls, self).__delattr__(name)  # type: ignore[arg-type]

    for function in (__setattr__, __delattr__):
        function.__qualname__ = f"{cls.__qualname__}.{function.__name__}"
        setattr(cls, function.__name__, function)


def _stand_in(cls: type, name: str) -> None:
    """cls.name until the class is finished: finish it, then call the real one."""

    def stand_in(self: Any, *args: Any, **kwargs: Any) -> Any:
        return getattr(_finished(cls), name)(self, *args, **kwargs)

    stand_in.__name__ = name
    stand_in.__qualname__ = f"{cls.__qualname__}.{name}"
    setattr(cls, name, stand_in)


def _finished(cls: type) -> type:
    """cls with @dataclass(frozen=True)'s own __init__, __repr__, __eq__ and
    __hash__, made on a twin of it (these four do not name their class)."""
    with _finishing:
        if not cls.__dataclass_params__.frozen:  # type: ignore[attr-defined]
            namespace: dict[str, object] = {
                "__module__": cls.__module__,
                "__qualname__": cls.__qualname__,
                "__doc__": cls.__doc__,
                "__annotations__": {field.name: field.type for field in fields(cls)},
            }
            for field in fields(cls):
                if field.default is not MISSING:
                    namespace[field.name] = field.default
            twin: type = dataclass(frozen=True)(type(cls.__name__, (), namespace))
            for name in _GENERATED:
                setattr(cls, name, twin.__dict__[name])
            cls.__dataclass_params__ = twin.__dataclass_params__  # type: ignore[attr-defined]
    return cls
