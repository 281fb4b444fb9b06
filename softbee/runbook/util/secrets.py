"""Secret parameters reach the kernel through its environment, never through the notebook.

Papermill writes every parameter it is given into the notebook it executes (the
injected cell and ``metadata.papermill.parameters``) and saves that working copy
after every cell: a password passed as a parameter would be on disk from the
first second of the run, and after a ``kill -9`` nothing would remove it.

So :func:`hide` splits a run's parameters before papermill sees them. A secret
value (any value of a parameter whose name says password/secret/token/key, and
the password of any URL) is replaced by its masked form (``"***"``,
``postgresql://u:***@h/db``), and the real values travel in one environment
variable, :data:`SECRETS_ENV`, that the kernel inherits. In the kernel,
:func:`reveal` gives back the real value for a masked one: ``load_project`` does
it for ``database_url`` and ``recover`` for ``fix_sql``, so the shipped runbooks
read like before. A runbook of one's own calls ``reveal(api_token, "api_token")``
where it needs the real value. A value typed by hand in JupyterLab has no entry
and comes back unchanged.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from softbee.runbook.util.redact import is_secret_name
from softbee.urls import MASK, mask_url_passwords

SECRETS_ENV = "SOFTBEE_RUNBOOK_SECRETS"


@dataclass(frozen=True)
class Hidden:
    """A run's parameters as papermill may write them, and what the kernel's environment adds."""

    parameters: dict[str, Any]
    environ: dict[str, str] = field(default_factory=dict)


def masked(name: str, value: Any) -> Any:
    """``value`` as the notebook may hold it: secret-named strings and URL passwords masked."""
    if isinstance(value, str):
        return MASK if value and is_secret_name(name) else mask_url_passwords(value)
    if isinstance(value, list):
        return [masked(name, item) for item in value]
    if isinstance(value, dict):
        return {key: masked(str(key) if is_secret_name(str(key)) else name, item)
                for key, item in value.items()}
    return value


def hide(parameters: Mapping[str, Any]) -> Hidden:
    """Masked parameters for papermill; the real secret values in :data:`SECRETS_ENV`."""
    shown: dict[str, Any] = {}
    real: dict[str, Any] = {}
    for name, value in parameters.items():
        shown[name] = masked(name, value)
        if shown[name] != value:
            real[name] = value
    environ = {SECRETS_ENV: json.dumps(real)} if real else {}
    return Hidden(parameters=shown, environ=environ)


def reveal(value: Any, name: str | None = None, environ: Mapping[str, str] | None = None) -> Any:
    """The real value behind a masked ``value``, from the kernel's environment; else ``value``.

    ``name`` picks the parameter when several secrets share one masked form (``"***"``).
    """
    if value is None:
        return None
    try:
        secrets = json.loads((os.environ if environ is None else environ).get(SECRETS_ENV) or "{}")
    except ValueError:
        return value
    if not isinstance(secrets, dict):
        return value
    if name is not None:
        secrets = {name: secrets[name]} if name in secrets else {}
    found = {json.dumps(real, sort_keys=True): real
             for key, real in secrets.items() if masked(key, real) == value}
    return next(iter(found.values())) if len(found) == 1 else value
