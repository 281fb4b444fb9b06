"""Migrating a database, with every guard rail around it.

Owns: the migration lock and timeouts (``guards``) and the data-loss guard (``dataloss``);
upgrades, downgrades, round trips and rehearsals (``migrate``, the entry point), on what a
run did (``result``), applying revisions (``apply``) and checking round trips
(``roundtrip``); MySQL/MariaDB's revision-by-revision runs (``stepwise``, their loss
predicted by ``predict``) and PostgreSQL's online plans (``online_run``), Alembic's own
``autocommit_block`` as an online phase (``autocommit``); statements captured in a
rehearsal (``capture``); scratch copies (``scratch``); a manual fix plus stamp (``recover``).
Inside, imports run one way: ``migrate`` -> ``stepwise``/``online_run`` -> ``roundtrip``
-> ``apply`` -> ``result``.
Imports: :mod:`~softbee.runbook.util`, :mod:`~softbee.runbook.project`,
:mod:`~softbee.runbook.online` and :mod:`~softbee.runbook.review`; never ``run``,
``archive`` or ``fleet``.
"""
