"""Executing a runbook notebook headless: its catalog, its kernel, papermill.

Owns: finding runbooks (``catalog``) and checking their parameters (``parameters``), the
warm kernel (``kernel``, ``kernel_launch``) and a run from parameters to archived notebook
(``execute``).
Imports: :mod:`~softbee.runbook.util` and :mod:`~softbee.runbook.archive`; the notebooks,
not this package, call ``project``, ``review`` and ``engine``.
"""
