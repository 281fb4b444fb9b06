"""Heavy imports without Python's cyclic garbage collector running through them.

Importing pandas, SQLAlchemy, Flask, IPython or nbconvert allocates hundreds of
thousands of objects (functions, classes, dicts of modules) and almost none of them
are garbage; the collector, triggered every 700 allocations, walks them again and
again anyway: 10-20 % of a run's start-up CPU (0.1-0.2 s in a runbook kernel, 0.05 s
in the ``softbee-runbook run`` process, measured on the 2-core development machine).
:func:`imports_without_gc` pauses it for the block, then moves what the block left
alive into the collector's permanent generation (:func:`gc.freeze`, unless told not
to), which later collections skip, and turns it back on: the cells and the run itself are collected as
ever. Garbage cycles made by the imports themselves stay in memory until the process
ends (a few kilobytes: modules are not garbage).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def imports_without_gc(*, freeze: bool = True) -> Iterator[None]:
    """Pause the cyclic collector for the block; freeze what it left alive; restore it.

    ``freeze=False`` leaves the objects where they are: for a process that goes on to do
    other work many times over (a fleet worker's runs), whose later garbage must not be
    frozen with them.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if freeze:
            gc.freeze()
        if was_enabled:
            gc.enable()
