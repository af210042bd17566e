"""A run may detect with LA Cosmic instead of training a network: record what kind of run it is.

Existing runs are training runs ("train").

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('runs') as batch:
        batch.add_column(sa.Column('kind', sa.String(length=16), server_default='train', nullable=False))
        batch.create_check_constraint(op.f('ck_runs_kind'), "kind IN ('train', 'lacosmic')")


def downgrade() -> None:
    # LA Cosmic runs are kept: they read as training runs without a model, their evaluations intact.
    with op.batch_alter_table('runs') as batch:
        batch.drop_constraint(op.f('ck_runs_kind'), type_='check')
        batch.drop_column('kind')
