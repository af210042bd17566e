"""Prediction jobs keep how many views of each frame their network averaged.

``prediction_jobs.views`` is 1 (the frame as it is), 2, 4 or 8 (flips and transposes,
:data:`segcore.inference.VIEWS`); jobs recorded before it averaged none, so they get 1.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('prediction_jobs') as batch:
        batch.add_column(sa.Column('views', sa.Integer(), nullable=False, server_default='1'))


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == 'sqlite'
    with op.batch_alter_table('prediction_jobs', table_kwargs={'sqlite_autoincrement': True} if sqlite else {}) as batch:
        batch.drop_column('views')
