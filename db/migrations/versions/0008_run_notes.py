"""Runs get the user's notes and tags.

Existing runs have none.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('runs') as batch:
        batch.add_column(sa.Column('notes', sa.Text(), nullable=True))
        batch.add_column(sa.Column('tags', sa.JSON(), nullable=True))


def downgrade() -> None:
    # Notes and tags go; the runs stay, their ids still never reused on SQLite (0006).
    sqlite = op.get_bind().dialect.name == 'sqlite'
    with op.batch_alter_table('runs', table_kwargs={'sqlite_autoincrement': True} if sqlite else {}) as batch:
        batch.drop_column('tags')
        batch.drop_column('notes')
