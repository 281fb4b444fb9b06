"""Helpers that know nothing of a project or a database: text, SQL text, secrets, paths.

Owns: SQLAlchemy-version shims (``compat``), the project root (``roots``), redaction
(``redact``) and masked parameters (``secrets``), splitting SQL (``sqltext``), naming
column types (``sqltypes``), reading a driver's error code (``error_codes``), a run's options
(``options``) and importing heavy libraries without the garbage collector (``gcpause``).
Imports: only :mod:`softbee.runbook.errors` and :mod:`softbee.urls`; never another
``softbee.runbook`` package.
"""
