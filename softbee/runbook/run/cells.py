"""How a runbook's cells speak: an expected error is one line, a table says "—" and "yes".

Installed in the kernel as an IPython extension by the headless runs' kernel
(:mod:`softbee.runbook.run.kernel_launch`), and when a cell first imports
``softbee.runbook`` in any other kernel (JupyterLab's), so a notebook needs no line of
its own for it:

- A :class:`~softbee.runbook.errors.RunbookError` raised in a cell shows as its message
  alone, the same line the CLI prints, instead of a traceback through the library. It
  is still an error: the cell's reply says so, papermill stops the run there, and the
  archive records it as failed. Any other exception keeps its whole traceback.
- A DataFrame's cells show "—" where a value is missing (``NaN``, ``None``) and
  "yes"/"no" for booleans, instead of ``NaN`` and ``True``/``False``.
"""

from __future__ import annotations

from typing import Any

from softbee.runbook.errors import RunbookError
from softbee.runbook.util.table import NONE, frame_html, plain_cell

__all__ = ["NONE", "install", "load_ipython_extension", "plain_cell"]
_INSTALLED = "_softbee_runbook_cells"


def install() -> bool:
    """Install both in the running IPython shell; False outside IPython (nothing to do)."""
    import sys

    if "IPython" not in sys.modules:  # not in a kernel: importing IPython would cost a second
        return False
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:
        return False
    load_ipython_extension(shell)
    return True


def load_ipython_extension(shell: Any) -> None:
    """IPython's hook (``--ext=softbee.runbook.run.cells``): install both in ``shell``, once."""
    if getattr(shell, _INSTALLED, False):
        return
    shell.set_custom_exc((RunbookError,), _one_line)
    _format_frames(shell)
    setattr(shell, _INSTALLED, True)


def _one_line(shell: Any, etype: type[BaseException], value: BaseException, tb: Any,
              tb_offset: int | None = None) -> list[str]:
    """IPython's custom handler: show the error with the message as its only traceback line.

    ``_showtraceback`` is what IPython itself calls to show an error; under ipykernel it
    sends the cell's ``error`` output (ename, evalue, this one line), which is what
    JupyterLab draws and papermill stops on.
    """
    stb = [f"\x1b[1;31m{etype.__name__}\x1b[0m: {value}".rstrip()]
    shell._showtraceback(etype, value, stb)
    return []


def _format_frames(shell: Any) -> None:
    """Render every DataFrame's HTML through :func:`plain_cell`, once pandas is imported.

    Registered by name, so that installing it does not import pandas (a fifth of a
    kernel's start-up); the library's own tables are :class:`~softbee.runbook.util.table.Table`,
    which draw themselves the same way.
    """
    formatter = shell.display_formatter.formatters["text/html"]
    for module in ("pandas", "pandas.core.frame"):  # DataFrame.__module__: pandas 3, pandas 2
        formatter.for_type_by_name(module, "DataFrame", frame_html)
