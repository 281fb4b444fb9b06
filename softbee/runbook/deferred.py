"""A third-party import that costs seconds and is almost never used, deferred to its first use.

nbformat (under papermill and nbconvert) imports jsonschema, and jsonschema imports
``rfc3987_syntax`` whenever it is installed (``jsonschema[format-nongpl]``, which
JupyterLab's ``jupyter-events`` pulls in). rfc3987-syntax 1.1 compiles about 38 Lark
grammars as it is imported: 1.3 to 1.8 s of CPU on the 2-core machine, the largest
single cost of a headless run before this module (python-jsonschema/jsonschema#1428).
The grammars only serve jsonschema's ``iri`` and ``iri-reference`` format checks, which
nbformat never asks for.

:func:`defer_iri_grammars` puts a stand-in for ``rfc3987_syntax`` in ``sys.modules``; the
real module is imported the first time anything of it is used, so a caller that does
check an IRI gets the same answer as before, only later.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types
from typing import Any

MODULE = "rfc3987_syntax"
_LOCK = threading.Lock()


class _StandIn(types.ModuleType):
    """Holds ``rfc3987_syntax``'s place until one of its names is used."""

    def __getattr__(self, name: str) -> Any:  # only for names the stand-in does not have
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(_real(), name)


def is_valid_syntax(term: str, value: str) -> bool:
    """``rfc3987_syntax.is_valid_syntax``, imported on this first call (jsonschema's only use)."""
    return bool(_real().is_valid_syntax(term, value))


def defer_iri_grammars() -> bool:
    """Defer ``rfc3987_syntax``'s import to its first use; True when the stand-in was installed.

    Nothing is done when it is not installed, already imported, or when jsonschema's
    format checkers were already set up (they hold the real function by then).
    """
    with _LOCK:
        if MODULE in sys.modules or "jsonschema._format" in sys.modules:
            return False
        try:
            spec = importlib.util.find_spec(MODULE)
        except (ImportError, ValueError):
            return False
        if spec is None:
            return False
        stand_in = _StandIn(MODULE, "Stand-in for rfc3987_syntax until its first use "
                                    "(softbee.runbook.deferred)")
        stand_in.__spec__ = spec
        stand_in.__path__ = list(spec.submodule_search_locations or [])
        stand_in.is_valid_syntax = is_valid_syntax  # type: ignore[attr-defined]
        sys.modules[MODULE] = stand_in
        return True


def is_deferred() -> bool:
    """Whether ``rfc3987_syntax`` is still the stand-in (its grammars not compiled)."""
    return isinstance(sys.modules.get(MODULE), _StandIn)


def _real() -> types.ModuleType:
    """The real ``rfc3987_syntax``, imported now if the stand-in still holds its place."""
    with _LOCK:
        current = sys.modules.get(MODULE)
        if not isinstance(current, _StandIn):
            return current if current is not None else importlib.import_module(MODULE)
        del sys.modules[MODULE]
        try:
            return importlib.import_module(MODULE)
        except BaseException:
            sys.modules[MODULE] = current
            raise
