"""redact: no password, token or secret survives into a notebook bound for the archive."""

from __future__ import annotations

import json

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from softbee.runbook.util.redact import Redactor, is_secret_name, url_passwords

ENV = {
    "DATABASE_URL": "postgresql://app:envpw123@db.internal:5432/softbee",
    "GITHUB_TOKEN": "ghp_envtoken999",
    "HOME": "/home/operator",
    "PWD": "/srv/project",
}
PARAMETERS = {
    "database_url": "postgresql://u:s3cr3tpw@h/db",
    "api_token": "abc123tok",
    "target": "head",
    "count": 3,
}


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("api_token", True),
        ("DB_PASSWORD", True),
        ("ClientSecret", True),
        ("SSH_KEY", True),
        ("passwd", True),
        ("DB_PASS", True),
        ("GOOGLE_CREDENTIALS", True),
        ("target", False),
        ("database_url", False),
        ("PWD", False),
    ],
)
def test_secret_names_say_password_secret_token_key_or_credential(name, secret):
    assert is_secret_name(name) is secret


def test_url_passwords_finds_the_password_as_written_and_decoded():
    assert url_passwords("postgresql://u:p%40ss%21@h/db") == {"p%40ss%21", "p@ss!"}
    assert url_passwords("see postgresql://u:pw1234@h/db and redis://:rpw5678@cache:6379/0") >= {
        "pw1234",
        "rpw5678",
    }
    assert url_passwords("sqlite:///instance/app.db") == set()


def test_a_runs_redactor_masks_parameters_and_environment_secrets_in_text():
    redactor = Redactor.for_run(PARAMETERS, ENV)
    text = (
        "params s3cr3tpw abc123tok; env envpw123 ghp_envtoken999; "
        "home /home/operator in /srv/project at head"
    )

    masked = redactor.text(text)

    for secret in ("s3cr3tpw", "abc123tok", "envpw123", "ghp_envtoken999"):
        assert secret not in masked
    assert "/home/operator" in masked and "/srv/project" in masked and "head" in masked


def test_any_url_password_in_free_text_is_masked_even_when_unknown():
    assert Redactor().text("postgresql://x:unknown99@h/db") == "postgresql://x:***@h/db"


def test_encoded_and_escaped_forms_of_a_secret_are_masked_too():
    redactor = Redactor(["p@ss'w\"rd"])

    for form in ("p%40ss%27w%22rd", "p@ss\\'w\"rd", "p@ss'w\\\"rd", "p@ss&#x27;w&quot;rd"):
        assert "***" in redactor.text(form), form


def test_short_values_are_not_masked_as_literals_everywhere():
    redactor = Redactor.for_run({"sort_key": "id", "use_token": True}, {"KEYBOARD": "us"})

    assert redactor.text("the id column, keyboard us") == "the id column, keyboard us"


def test_parameters_for_the_index_mask_secret_names_whole_and_url_passwords():
    redactor = Redactor.for_run({**PARAMETERS, "db_password": "abc"}, {})

    assert redactor.parameters({**PARAMETERS, "db_password": "abc"}) == {
        "database_url": "postgresql://u:***@h/db",
        "api_token": "***",
        "target": "head",
        "count": 3,
        "db_password": "***",
    }


def _executed_like_papermill() -> nbformat.NotebookNode:
    injected = new_code_cell(
        '# Parameters\ndatabase_url = "postgresql://u:s3cr3tpw@h/db"\napi_token = "abc123tok"\n'
        'db_password = "abc"\n'
    )
    injected.metadata["tags"] = ["injected-parameters"]
    failing = new_code_cell(
        "connect(database_url)",
        outputs=[
            new_output(
                "stream",
                name="stdout",
                text="env postgresql://app:envpw123@db.internal:5432/softbee\n",
            ),
            new_output(
                "execute_result",
                data={
                    "text/plain": "{'token': 'abc123tok'}",
                    "application/json": {"token": "abc123tok"},
                },
                execution_count=2,
            ),
            new_output(
                "error",
                ename="OperationalError",
                evalue="password for u failed: s3cr3tpw",
                traceback=[
                    '\x1b[0;31mOperationalError\x1b[0m: \x1b[33m"postgresql://u:s3cr3tpw@h/db"\x1b[39m'
                ],
            ),
        ],
    )
    nb = new_notebook(cells=[injected, failing])
    nb.metadata["papermill"] = {
        "parameters": {
            "database_url": PARAMETERS["database_url"],
            "api_token": "abc123tok",
            "db_password": "abc",
        },
        "environment_variables": {},
    }
    return nb


def test_a_notebook_is_masked_in_sources_outputs_tracebacks_and_metadata():
    nb = _executed_like_papermill()
    redactor = Redactor.for_run({**PARAMETERS, "db_password": "abc"}, ENV)

    masked = redactor.notebook(nb)

    text = json.dumps(masked)
    for secret in ("s3cr3tpw", "abc123tok", "envpw123"):
        assert secret not in text
    assert 'db_password = "***"' in masked.cells[0].source  # short, but named secret
    assert masked.metadata.papermill.parameters["db_password"] == "***"
    assert masked.cells[1].outputs[2].ename == "OperationalError"
    nbformat.validate(masked)


def test_redacting_a_notebook_leaves_the_original_untouched():
    nb = _executed_like_papermill()

    Redactor.for_run(PARAMETERS, ENV).notebook(nb)

    assert "s3cr3tpw" in json.dumps(nb)
