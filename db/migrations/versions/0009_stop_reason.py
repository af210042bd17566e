"""A run records why its training ended (all its epochs, early stopping, its time limit...).

Existing runs: not known (NULL).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('runs') as batch:
        batch.add_column(sa.Column('stop_reason', sa.String(length=32), nullable=True))


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == 'sqlite'
    with op.batch_alter_table('runs', table_kwargs={'sqlite_autoincrement': True} if sqlite else {}) as batch:
        batch.drop_column('stop_reason')
