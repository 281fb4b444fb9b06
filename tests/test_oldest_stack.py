"""The four runbooks on a project pinned to the oldest supported stack (tests/examples/oldest_stack).

``make test-oldest`` runs this file in ``.venv-oldest`` (requirements/oldest.txt: Flask 2.1,
Flask-SQLAlchemy 2.5, SQLAlchemy 1.4, Flask-Migrate 2.5, Alembic 1.7); ``make test`` runs it
on the newest releases. Its env.py is Flask-Migrate 2.5's own template, and two of its
revisions need a live connection.
"""

from __future__ import annotations

import os
from importlib.metadata import version

import pytest
import sqlalchemy as sa

from softbee.runbook.engine.migrate import run_migration
from softbee.runbook.errors import AppMigratedOnLoad
from softbee.runbook.online.phases import PHASE_TABLE
from tests.helpers import (
    BEEYARD_APP,
    BEEYARD_REVISIONS,
    LIVE_ONLY,
    REPO_ROOT,
    add_hives,
    dump,
    revision_of,
)
from tests.notebooks import run_runbook

HEAD = BEEYARD_REVISIONS[-1]
ONLINE = "f2000000005e"
# A revision in the shape of Soft-Bee's full_name one, written into beeyard's copy by the
# test below: the online operations on this stack's Alembic, SQLAlchemy and Flask-Migrate.
ONLINE_REVISION = f'''"""label hives, online: add nullable, backfill, NOT NULL, index

Revision ID: {ONLINE}
Revises: {HEAD}
Create Date: 2022-07-01 09:00:00.000000

"""
from alembic import op
import sqlalchemy as sa

from softbee.runbook import online

revision = '{ONLINE}'
down_revision = '{HEAD}'
branch_labels = None
depends_on = None

hives = sa.table('hives', sa.column('id', sa.Integer()), sa.column('name', sa.String()),
                 sa.column('label', sa.String()))


def add_label():
    with op.batch_alter_table('hives', schema=None) as batch_op:
        batch_op.add_column(sa.Column('label', sa.String(length=80), nullable=True))


def upgrade():
    online.run_phases(
        revision,
        online.ddl('add hives.label, nullable', add_label),
        online.backfill(hives, {{'label': sa.func.upper(hives.c.name)}},
                        where=hives.c.label.is_(None)),
        online.set_not_null('hives', 'label', existing_type=sa.String(length=80)),
        online.create_index('ix_hives_label', 'hives', ['label']),
    )


def downgrade():
    with op.batch_alter_table('hives', schema=None) as batch_op:
        batch_op.drop_index('ix_hives_label')
        batch_op.drop_column('label')
'''


def pins(path) -> dict[str, str]:
    """``name==version`` lines of a requirements file, by lower-case name."""
    found = {}
    for line in path.read_text().splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            name, _, pinned = line.partition("==")
            found[name.strip().lower()] = pinned.split("#")[0].strip()
    return found


def test_the_example_and_the_oldest_environment_pin_the_same_stack() -> None:
    """requirements/oldest.txt and the example's requirements.txt name the same versions."""
    example = pins(REPO_ROOT / "tests" / "examples" / "oldest_stack" / "requirements.txt")
    oldest = pins(REPO_ROOT / "requirements" / "oldest.txt")
    assert example and {name: oldest.get(name) for name in example} == example


@pytest.mark.skipif(os.environ.get("SOFTBEE_STACK") != "oldest", reason="only in .venv-oldest")
def test_this_environment_is_the_oldest_stack() -> None:
    """Under make test-oldest every pinned package is installed at its pin: the runs below are on it."""
    for name, pinned in pins(REPO_ROOT / "requirements" / "oldest.txt").items():
        assert version(name) == pinned, name
    assert version("pytest-timeout")  # the per-test bound applies here too (raises when absent)


def test_the_runbook_library_runs_on_this_stack(database_url: str, beeyard) -> None:
    """Upgrade from base with rows in the way, a guarded downgrade, and a rehearsal on beeyard."""
    project = beeyard(database_url)
    run_migration(project, "upgrade", BEEYARD_REVISIONS[1])
    add_hives(database_url)
    result = run_migration(project, "upgrade", "head")
    assert result.committed and revision_of(database_url) == HEAD
    engine = sa.create_engine(database_url)
    with engine.connect() as conn:
        assert dict(conn.execute(sa.text("SELECT name, yard FROM hives")).all()) == {
            "north-1": "north", "south-2": "south", "lone": "home"}
    engine.dispose()

    unchanged = dump(database_url)
    result = run_migration(project, "downgrade", "base", rehearse=True, allow_data_loss=True)
    assert result.rehearsal and result.end is None
    assert dump(database_url) == unchanged


def labels_ok(url: str) -> tuple[dict[str, str], bool, bool]:
    """hives' labels by name, whether label is NOT NULL, and whether ix_hives_label is usable."""
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        labels = dict(conn.execute(sa.text("SELECT name, label FROM hives")).all())
        inspector = sa.inspect(conn)
        not_null = not next(c for c in inspector.get_columns("hives") if c["name"] == "label")[
            "nullable"]
        indexed = "ix_hives_label" in {i["name"] for i in inspector.get_indexes("hives")}
        if indexed and conn.dialect.name == "postgresql":
            indexed = conn.execute(sa.text(
                "SELECT indisvalid FROM pg_index WHERE indexrelid = 'ix_hives_label'::regclass"
            )).scalar_one()
        assert not inspector.has_table(PHASE_TABLE)  # nothing of the runbook's left behind
    engine.dispose()
    return labels, not_null, indexed


def test_an_online_revision_runs_on_this_stack_by_runbook_and_by_flask_migrate(
    database_url: str, beeyard
) -> None:
    """run_phases on this stack: online phases on PostgreSQL, plain ones on SQLite, both ways in."""
    (beeyard.root / "migrations" / "versions" / f"{ONLINE}_label_hives_online.py").write_text(
        ONLINE_REVISION)
    project = beeyard(database_url)
    run_migration(project, "upgrade", BEEYARD_REVISIONS[1])
    add_hives(database_url)
    labelled = {"north-1": "NORTH-1", "south-2": "SOUTH-2", "lone": "LONE"}

    result = run_migration(project, "upgrade", "head")
    assert result.committed and revision_of(database_url) == ONLINE
    assert labels_ok(database_url) == (labelled, True, True)
    if project.dialect == "postgresql":
        runs = list(result.phases_frame()["runs"])
        assert runs == ["in the transaction", "online", "online", "online"], runs
    else:
        assert result.phases == []

    run_migration(project, "downgrade", HEAD, allow_data_loss=True)  # labels are derived
    assert revision_of(database_url) == HEAD
    # Flask-Migrate 2.5's own upgrade(), which beeyard's factory calls on start.
    with pytest.raises(AppMigratedOnLoad, match=f"from {HEAD} to {ONLINE}"):
        beeyard(database_url, app="beeyard:create_app")
    assert labels_ok(database_url) == (labelled, True, True)


@pytest.mark.notebook
def test_the_four_runbooks_run_on_the_oldest_stack_example(
    database_url: str, beeyard, tmp_path
) -> None:
    """inspect_diff from base, a round-trip upgrade, a dry-run stamp, then an autogenerated revision."""
    root = beeyard.root
    project = {"app": BEEYARD_APP, "migrations_dir": "migrations", "database_url": database_url}

    nb = run_runbook("inspect_diff", tmp_path, cwd=root, **project)
    assert revision_of(database_url) is None
    assert all(rev in "".join(str(o) for c in nb.cells for o in c.get("outputs", []))
               for rev in LIVE_ONLY)

    run_runbook("upgrade_downgrade", tmp_path, cwd=root, round_trip=True, **project)
    assert revision_of(database_url) == HEAD

    unchanged = dump(database_url)
    run_runbook("recover_stamp", tmp_path, cwd=root, stamp_revision="head", **project)
    assert dump(database_url) == unchanged

    models = root / "beeyard" / "__init__.py"
    source = models.read_text()
    yard = "    yard = db.Column(db.String(40), nullable=True, index=True)\n"
    assert yard in source
    models.write_text(source.replace(yard, yard + "    queen_year = db.Column(db.Integer, nullable=True)\n"))
    run_runbook("generate_revision", tmp_path, cwd=root, message="Add the queen's year to hives",
                **project)
    written = [p for p in (root / "migrations" / "versions").glob("*.py")
               if not p.name.startswith(BEEYARD_REVISIONS)]
    assert len(written) == 1 and "queen_year" in written[0].read_text()
    assert revision_of(database_url) == HEAD
