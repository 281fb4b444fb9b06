"""Keep secrets out of the archive: mask them in every string of a notebook.

Papermill writes the parameters twice (the injected cell and
``metadata.papermill.parameters``) and any output, a traceback above all, can
echo a URL or a token. A :class:`Redactor` knows the literal secrets of one run
(values of parameters and environment variables whose names say
password/secret/token/key, and the password of every URL among them) and masks
them, then masks any ``scheme://user:password@`` left in free text.
"""

from __future__ import annotations

import html
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, quote_plus

from softbee.urls import MASK, redact_text, url_passwords

if TYPE_CHECKING:
    import nbformat

# "pass" covers PASSWORD, PASSWD, PGPASS, DB_PASS; over-masking a harmless value is the safe side.
SECRET_NAME = re.compile(r"pass|secret|token|key|credential", re.IGNORECASE)

#: Shorter values are not masked as literals: masking "1" or "yes" everywhere would
#: wreck the notebook. A secret-named parameter is still masked in full in the
#: injected cell, the papermill metadata and the index, whatever its length.
MIN_SECRET_LENGTH = 4

INJECTED_TAG = "injected-parameters"

# scheme://user:password@  (the same shape softbee.urls masks)
_ASSIGNMENT = re.compile(r"^(?P<head>\s*(?P<name>[A-Za-z_]\w*)\s*(:[^=]*)?=\s*)(?P<value>.*)$")


def is_secret_name(name: str) -> bool:
    """Whether a parameter or variable name says password, secret, token, key or credential."""
    return bool(SECRET_NAME.search(name))


class Redactor:
    """Masks one run's secrets (and every URL password) in text, values and notebooks."""

    def __init__(self, secrets: Iterable[str] = (), names: Iterable[str] = ()) -> None:
        variants: set[str] = set()
        for secret in secrets:
            variants.update(v for v in _variants(secret) if len(v) >= MIN_SECRET_LENGTH)
        self.secret_names = frozenset(names)
        self._literals = frozenset(variants)
        ordered = sorted(variants, key=len, reverse=True)  # longest first: no partial masks
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    @classmethod
    def for_run(
        cls, parameters: Mapping[str, Any], environ: Mapping[str, str] | None = None
    ) -> Redactor:
        """The redactor for a run with these parameters, in this environment."""
        environ = os.environ if environ is None else environ
        secrets: set[str] = set()
        names = {name for name in parameters if is_secret_name(name)}
        for name, value in parameters.items():
            for text in _leaves(value):
                if name in names:
                    secrets.add(text)
                secrets.update(url_passwords(text))
        for name, value in environ.items():
            if is_secret_name(name):
                secrets.add(value)
            secrets.update(url_passwords(value))
        return cls(secrets, names)

    def text(self, text: str) -> str:
        """``text`` with every known secret and URL password replaced by ``***``."""
        if self._pattern is not None:
            text = self._pattern.sub(MASK, text)
        return redact_text(text)

    def value(self, value: Any) -> Any:
        """A copy of ``value`` (str, list, dict, NotebookNode...) with every string masked."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return type(value)((key, self.value(item)) for key, item in value.items())
        if isinstance(value, (list, tuple)):
            return type(value)(self.value(item) for item in value)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return MASK if str(value) in self._literals else value
        return value

    def parameters(self, parameters: Mapping[str, Any]) -> dict[str, Any]:
        """Parameters safe to store: secret-named ones masked whole, the rest string-masked."""
        return {
            name: (MASK if name in self.secret_names and value is not None else self.value(value))
            for name, value in parameters.items()
        }

    def notebook(self, nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
        """A masked copy of ``nb``: sources, outputs (tracebacks too) and metadata."""
        masked = self.value(nb)
        papermill = masked.get("metadata", {}).get("papermill", {})
        if isinstance(papermill.get("parameters"), dict):
            papermill["parameters"] = self.parameters(papermill["parameters"])
        for cell in masked.get("cells", []):
            if INJECTED_TAG in cell.get("metadata", {}).get("tags", []):
                cell["source"] = self._mask_assignments(cell.get("source", ""))
        return masked

    def _mask_assignments(self, source: str | list[str]) -> str:
        """In the injected cell, ``api_token = "abc"`` becomes ``api_token = "***"``."""
        text = "".join(source) if isinstance(source, list) else source
        lines = []
        for line in text.split("\n"):
            match = _ASSIGNMENT.match(line)
            if (
                match
                and match.group("name") in self.secret_names
                and match.group("value") != "None"
            ):
                line = f'{match.group("head")}"{MASK}"'
            lines.append(line)
        return "\n".join(lines)


def _variants(secret: str) -> Iterator[str]:
    """The forms a secret takes once quoted, escaped or encoded on its way into a notebook."""
    yield secret
    yield quote(secret, safe="")
    yield quote(secret)
    yield quote_plus(secret)
    yield json.dumps(secret)[1:-1]
    yield json.dumps(secret, ensure_ascii=False)[1:-1]
    yield repr(secret)[1:-1]
    yield html.escape(secret)
    yield secret.encode("unicode_escape").decode("ascii").replace('"', r"\"")  # papermill's


def _leaves(value: Any) -> Iterator[str]:
    """Every scalar inside ``value`` as text."""
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _leaves(item)
    else:
        yield str(value)
