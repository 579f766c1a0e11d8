"""The one importer of what a config or a registry names: `package.module.attr` (an import path
in a config) or `package.module:attr.inner` (an entry point's target). Every other module asks
here, so a name imports the same way in `check`, in training and in every tool."""

from __future__ import annotations

import importlib
from typing import Any


def import_attribute(path: str) -> Any:
    """The attribute a path names (a module's `__getattr__` may make it); ImportError when its
    module cannot be imported, AttributeError when the module has no such attribute."""
    module_name, colon, inner = path.partition(":")
    if not colon:
        module_name, _, inner = path.rpartition(".")
    obj: Any = importlib.import_module(module_name)
    for part in inner.split("."):
        obj = getattr(obj, part)
    return obj
