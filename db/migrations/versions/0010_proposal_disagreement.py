"""Each model proposal keeps how many pixels it and the frame's LA Cosmic proposal disagree on.

``proposals.disagreement`` is that count, ``proposals.disagreement_with`` the LA Cosmic proposal
it was counted against: the labeling queue counts a pair once and reads the number afterwards,
instead of reading both masks on every call. Existing proposals get it when the queue first
needs it.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('proposals') as batch:
        batch.add_column(sa.Column('disagreement', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('disagreement_with', sa.Integer(), nullable=True))


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == 'sqlite'
    with op.batch_alter_table('proposals', table_kwargs={'sqlite_autoincrement': True} if sqlite else {}) as batch:
        batch.drop_column('disagreement_with')
        batch.drop_column('disagreement')
