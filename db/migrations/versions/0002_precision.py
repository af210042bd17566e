"""Record the arithmetic (Keras dtype policy) a run trained in and an evaluation computed in.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('runs') as batch:
        batch.add_column(sa.Column('precision', sa.String(length=32), nullable=True))
    with op.batch_alter_table('evaluations') as batch:
        batch.add_column(sa.Column('precision', sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('evaluations') as batch:
        batch.drop_column('precision')
    with op.batch_alter_table('runs') as batch:
        batch.drop_column('precision')
