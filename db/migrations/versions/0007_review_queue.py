"""The labeling loop's queue: a review status per frame, and each proposal's uncertain pixels.

``frame_reviews`` says where a frame stands (proposed, corrected, reviewed); existing frames
have no row (no status yet). ``proposals.uncertain_pixels`` counts the pixels a model hesitated
on (probability between 0.2 and 0.8); existing proposals get it when the queue first needs it.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'frame_reviews',
        sa.Column('frame_id', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('author', sa.String(length=200), nullable=False),
        sa.Column('changed', sa.DateTime(), nullable=False),
        sa.CheckConstraint("status IN ('proposed', 'corrected', 'reviewed')", name=op.f('ck_frame_reviews_status')),
        sa.ForeignKeyConstraint(['frame_id'], ['frames.id'], name=op.f('fk_frame_reviews_frame_id_frames'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('frame_id', name=op.f('pk_frame_reviews')),
    )
    with op.batch_alter_table('proposals') as batch:
        batch.add_column(sa.Column('uncertain_pixels', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('proposals') as batch:
        batch.drop_column('uncertain_pixels')
    op.drop_table('frame_reviews')
