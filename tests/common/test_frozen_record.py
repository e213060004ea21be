"""@frozen_record (common/frozen_record.py) makes what @dataclass(frozen=True)
makes, only later: each record of the contract behaves as its dataclass twin
before and after its generated methods are first used, from any thread."""

from __future__ import annotations

import copy
import dataclasses
import pickle
import threading

import pytest
from chadthrottle import contract
from chadthrottle.frozen_record import frozen_record

RECORDS = [contract.ApplicationInfo, contract.BackendInfo, contract.ConnectionInfo, contract.InterfaceInfo,
           contract.LinkShapingInfo, contract.ProcessTraffic, contract.RuleInfo, contract.ScheduleInfo]  # fmt: skip
SAMPLE = {"str": "a\n'b", "int": 7, "float": 1.5, "bool": True, "tuple[int, ...]": (1, 2),
          "tuple[str, ...]": ("x",)}  # fmt: skip


def _fresh(record: type) -> tuple[type, type]:
    """A new frozen_record class and a @dataclass(frozen=True) class, both from record's body."""

    def body() -> dict[str, object]:
        namespace: dict[str, object] = {"__module__": record.__module__, "__qualname__": record.__qualname__,
                                        "__doc__": record.__doc__,
                                        "__annotations__": {f.name: f.type for f in dataclasses.fields(record)}}  # fmt: skip
        for name, value in vars(record).items():
            if callable(value) and not name.startswith("__"):
                namespace[name] = value  # its own methods (limit_bps, ...)
        for field in dataclasses.fields(record):
            if field.default is not dataclasses.MISSING:
                namespace[field.name] = field.default
        return namespace

    lazy = frozen_record(type(record.__name__, (), body()))
    plain = dataclasses.dataclass(frozen=True)(type(record.__name__, (), body()))
    return lazy, plain


def _values(record: type, salt: int = 0) -> dict[str, object]:
    values = {}
    for field in dataclasses.fields(record):
        value = SAMPLE[str(field.type)]
        values[field.name] = (
            value + salt if isinstance(value, int) and not isinstance(value, bool) else value
        )
    return values


def _behaviour(cls: type, values: dict[str, object]) -> list[object]:
    """Everything a caller can see of the class and two instances (compared
    by name and value: the classes differ)."""
    one, two, other = cls(**values), cls(**values), cls(**{**values, next(iter(values)): "changed"})
    seen: list[object] = [repr(one), one == two, one != other, one == other, one.__eq__(object()),
                          hash(one) == hash(two), hash(one), dataclasses.is_dataclass(cls),
                          [(f.name, f.type, f.default) for f in dataclasses.fields(cls)], cls.__match_args__,
                          repr(cls.__dataclass_params__), dataclasses.asdict(one), dataclasses.astuple(one),
                          repr(dataclasses.replace(one, **{next(iter(values)): "r"})),
                          repr(copy.deepcopy(one))]  # fmt: skip
    for action in (lambda: setattr(one, next(iter(values)), 1), lambda: setattr(one, "not_a_field", 1),
                   lambda: delattr(one, next(iter(values))), lambda: delattr(one, "not_a_field"),
                   lambda: cls(), lambda: cls(*values.values(), *values.values()),
                   lambda: cls(**values, not_a_field=1)):  # fmt: skip
        try:
            seen.append(("done", repr(action())))
        except Exception as error:
            seen.append((type(error), str(error)))
    for name in ("__init__", "__repr__", "__eq__", "__hash__", "__setattr__", "__delattr__"):
        seen.append(getattr(cls, name).__qualname__)
    return seen


@pytest.mark.parametrize("record", RECORDS, ids=lambda record: record.__name__)
def test_a_record_behaves_as_its_frozen_dataclass(record: type) -> None:
    lazy, plain = _fresh(record)
    assert lazy.__dataclass_params__.frozen is False  # not finished: nothing compiled yet
    assert "__init__" not in vars(plain) or vars(lazy)["__init__"] is not vars(plain)["__init__"]
    assert _behaviour(lazy, _values(record)) == _behaviour(plain, _values(record))
    assert repr(lazy.__dataclass_params__) == repr(plain.__dataclass_params__)


def test_a_record_built_without_init_compares_hashes_and_prints_as_one_built_with_it() -> None:
    lazy, plain = _fresh(contract.RuleInfo)
    values = _values(contract.RuleInfo, salt=3)
    built = object.__new__(lazy)  # as record_codec fills records
    built.__dict__.update(values)
    assert built == lazy(**values) and hash(built) == hash(lazy(**values))
    assert repr(built) == repr(plain(**values))


def test_threads_finishing_a_record_at_once_all_see_the_generated_methods() -> None:
    for _ in range(20):
        lazy, _plain = _fresh(contract.ApplicationInfo)
        values = _values(contract.ApplicationInfo)
        one, two = object.__new__(lazy), object.__new__(lazy)
        one.__dict__.update(values)
        two.__dict__.update(values)
        start = threading.Barrier(8)
        results: list[bool] = []

        def compare(one: object = one, two: object = two, start: threading.Barrier = start,
                    results: list[bool] = results) -> None:  # fmt: skip
            start.wait()
            results.append(one == two and hash(one) == hash(two))

        threads = [threading.Thread(target=compare) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert results == [True] * 8


def test_a_contract_record_pickles_and_copies_before_and_after_it_is_finished() -> None:
    backend = object.__new__(contract.BackendInfo)  # perhaps not finished yet
    backend.__dict__.update(
        name="tc", available=True, reason="", active_directions=("down",), notes=""
    )
    for _ in range(2):
        again = pickle.loads(pickle.dumps(backend))
        assert type(again) is contract.BackendInfo and vars(again) == vars(backend)
        assert copy.copy(backend) == backend == again  # finishes it, the second time round it is
    assert contract.BackendInfo.__dataclass_params__.frozen


def test_the_contract_s_records_are_not_finished_by_importing_it() -> None:
    import subprocess
    import sys

    probe = ("from chadthrottle import contract\n"
             f"print([r for r in {[r.__name__ for r in RECORDS]} if getattr(contract, r).__dataclass_params__.frozen])")  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_what_frozen_dataclass_would_refuse_or_make_otherwise_is_refused() -> None:
    with pytest.raises(TypeError, match="docstring"):
        frozen_record(type("NoDoc", (), {"__annotations__": {"a": "int"}}))
    with pytest.raises(TypeError, match="plain fields only"):
        frozen_record(type("Factory", (), {"__doc__": "d", "__annotations__": {"a": "list[int]"},
                                           "a": dataclasses.field(default_factory=list)}))  # fmt: skip
    with pytest.raises(TypeError, match="__setattr__"):
        frozen_record(type("Own", (), {"__doc__": "d", "__annotations__": {"a": "int"},
                                       "__setattr__": lambda self, name, value: None}))  # fmt: skip
