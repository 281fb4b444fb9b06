"""How a runbook process stops: SIGTERM unwinds like Ctrl-C; a finished command exits at once.

Shared by the ``softbee-runbook`` command (:mod:`softbee.runbook.cli`) and the fleet
workers (:mod:`softbee.runbook.fleet.worker`), so neither imports the other.
"""

from __future__ import annotations

import sys
from typing import NoReturn


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler's stop or timeout): unwinds like Ctrl-C, so the run is archived."""


def exit_now(code: int) -> NoReturn:
    """Run the atexit handlers, flush stdout and stderr, and end the process with ``code``."""
    import atexit
    import os

    run_exit_functions = getattr(atexit, "_run_exitfuncs", None)
    if run_exit_functions is None:  # not CPython: the ordinary way
        sys.exit(code)
    run_exit_functions()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said
            pass
    os._exit(code)
