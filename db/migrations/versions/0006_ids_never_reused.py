"""Ids of datasets, runs, evaluations and prediction jobs are never handed out twice.

SQLite gives a new row the largest id in use plus one, so deleting the newest run
handed its id (and its folder name, ``runs/<id>``) to the next one. AUTOINCREMENT
makes SQLite remember the largest id ever used. PostgreSQL sequences never go back,
so nothing changes there.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

TABLES = ('datasets', 'runs', 'evaluations', 'prediction_jobs')


def _rebuild(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != 'sqlite':
        return
    for table in TABLES:
        # The table is copied with its columns, keys, checks and indexes; only the id rule changes.
        with op.batch_alter_table(table, recreate='always', table_kwargs={'sqlite_autoincrement': autoincrement}):
            pass


def upgrade() -> None:
    _rebuild(True)


def downgrade() -> None:
    _rebuild(False)
