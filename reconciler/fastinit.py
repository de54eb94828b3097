"""A faster __init__ for the frozen dataclasses made by the ten thousand.

A frozen dataclass's generated __init__ sets every field through object.__setattr__, to get
past its own guard; that is 2 to 4 times slower than a plain assignment, and at 10,000 grants
it is tenths of a second per run (grants, files, logins, roles, actions, statements). `fast_init`
replaces it with one that writes the fields straight into the instance's __dict__: the same
signature, defaults and default factories, and the instance is exactly as frozen afterwards.
"""

from __future__ import annotations

import inspect
from dataclasses import MISSING, fields, is_dataclass
from typing import Any, TypeVar

T = TypeVar("T")


def fast_init(cls: type[T]) -> type[T]:
    """Decorate a frozen dataclass (no __post_init__, no init=False or kw_only fields)."""
    if not is_dataclass(cls) or hasattr(cls, "__post_init__") or "__slots__" in vars(cls):
        raise TypeError(f"fast_init needs a plain frozen dataclass, not {cls.__name__}")
    namespace: dict[str, Any] = {"_MISSING": MISSING}
    params, lines = [], []
    for f in fields(cls):
        if not f.init or f.kw_only:
            raise TypeError(f"fast_init: field {cls.__name__}.{f.name} is not a plain one")
        if f.default is not MISSING:
            namespace[f"_default_{f.name}"] = f.default
            params.append(f"{f.name}=_default_{f.name}")
        elif f.default_factory is not MISSING:
            namespace[f"_factory_{f.name}"] = f.default_factory
            params.append(f"{f.name}=_MISSING")
            lines.append(f"    if {f.name} is _MISSING:\n"
                         f"        {f.name} = _factory_{f.name}()\n")
        else:
            params.append(f.name)
        lines.append(f"    fill[{f.name!r}] = {f.name}\n")
    source = (f"def __init__(self, {', '.join(params)}):\n    fill = self.__dict__\n"
              + "".join(lines))
    exec(compile(source, f"<fast_init {cls.__name__}>", "exec"), namespace)  # noqa: S102
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__doc__ = cls.__init__.__doc__
    init.__signature__ = inspect.signature(cls.__init__)
    setattr(cls, "__init__", init)  # noqa: B010 - mypy forbids assigning a method
    return cls
