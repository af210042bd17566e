"""A run's threshold can be chosen on validation frames: record where it came from, and why
training computed in its arithmetic.

Existing runs keep their threshold, marked "fixed" (it was a number given at start).
The threshold may now be empty: a run whose threshold is still to be chosen.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('runs') as batch:
        batch.add_column(sa.Column('threshold_source', sa.String(length=16), server_default='fixed', nullable=False))
        batch.add_column(sa.Column('precision_reason', sa.Text(), nullable=True))
        batch.alter_column('threshold', existing_type=sa.Float(), nullable=True)
        batch.create_check_constraint(op.f('ck_runs_threshold_source'), "threshold_source IN ('validation', 'fixed')")


def downgrade() -> None:
    op.execute("UPDATE runs SET threshold = 0.5 WHERE threshold IS NULL")
    with op.batch_alter_table('runs') as batch:
        batch.drop_constraint(op.f('ck_runs_threshold_source'), type_='check')
        batch.alter_column('threshold', existing_type=sa.Float(), nullable=False)
        batch.drop_column('precision_reason')
        batch.drop_column('threshold_source')
