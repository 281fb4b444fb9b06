"""deferred: nbformat no longer compiles rfc3987-syntax's grammars, and IRI checks still work."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("rfc3987_syntax", reason="only jsonschema[format-nongpl] installs it")


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    return done.stdout.strip()


def test_importing_nbformat_after_the_library_does_not_import_the_iri_grammars():
    out = _run("import sys, softbee.runbook, nbformat, papermill, nbconvert; "
               "from softbee.runbook.deferred import is_deferred; "
               "print('lark' in sys.modules, is_deferred())")
    assert out == "False True"


def test_without_the_library_nbformat_imports_them_as_before():
    assert _run("import sys, nbformat; print('lark' in sys.modules)") == "True"


def test_an_iri_check_gets_the_real_answer_and_loads_the_grammars_then():
    out = _run(
        "import sys, softbee.runbook, jsonschema\n"
        "checker = jsonschema.FormatChecker()\n"
        "print(checker.conforms('https://example.org/ä', 'iri'),"
        " checker.conforms('not an iri', 'iri'), 'lark' in sys.modules)\n"
        "import rfc3987_syntax\n"
        "print(rfc3987_syntax.is_valid_syntax_iri('https://example.org/'))\n"
    )
    assert out.splitlines() == ["True False True", "True"]


def test_nothing_is_deferred_once_jsonschema_has_its_format_checkers():
    out = _run("import jsonschema, softbee.runbook.deferred as d; "
               "print(d.defer_iri_grammars(), d.is_deferred())")
    assert out == "False False"
