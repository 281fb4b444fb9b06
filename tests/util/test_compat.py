"""util/compat.py: what differs between the Flask-SQLAlchemy and SQLAlchemy versions supported."""

from __future__ import annotations

from types import SimpleNamespace

import sqlalchemy as sa

from softbee.runbook.util.compat import models_metadata


def test_flask_sqlalchemy_2_5_default_bind_leaves_the_other_binds_tables_out() -> None:
    """Flask-SQLAlchemy 2.5 keeps every bind's tables in one metadata: the default bind's
    models are those with no bind_key (before: all of them, so the audit bind's tables were
    expected in the default database too)."""
    metadata = sa.MetaData()
    sa.Table("hives", metadata, sa.Column("id", sa.Integer, primary_key=True))
    sa.Table("audit_events", metadata, sa.Column("id", sa.Integer, primary_key=True),
             info={"bind_key": "audit"})
    db = SimpleNamespace(metadata=metadata)  # no .metadatas: the 2.5 shape
    assert set(models_metadata(db).tables) == {"hives"}
    assert set(models_metadata(db, "audit").tables) == {"audit_events"}
    one = sa.MetaData()
    sa.Table("hives", one, sa.Column("id", sa.Integer, primary_key=True))
    assert models_metadata(SimpleNamespace(metadata=one)) is one  # one database: all of it
