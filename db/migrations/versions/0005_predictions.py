"""Proposals apart from ground truth: prediction jobs, the proposals they make per frame, and
what a saved mask took from a proposal.

A saved mask may now be "corrected" (a proposal the expert changed) and records the proposal
it started from with the pixels and cosmics changed from it. Existing masks have none.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

STATUSES = "status IN ('queued', 'running', 'finished', 'failed', 'cancelled')"


def upgrade() -> None:
    op.create_table(
        'prediction_jobs',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('dataset_id', sa.Integer(), nullable=True),
        sa.Column('dataset_name', sa.String(length=200), nullable=False),
        sa.Column('run_id', sa.Integer(), nullable=True),
        sa.Column('model_source', sa.String(length=16), nullable=False),
        sa.Column('model_name', sa.String(length=300), nullable=False),
        sa.Column('model_path', sa.String(length=1000), nullable=True),
        sa.Column('params', sa.JSON(), nullable=True),
        sa.Column('threshold', sa.Float(), nullable=True),
        sa.Column('scope', sa.String(length=16), nullable=False),
        sa.Column('frame_ids', sa.JSON(), nullable=False),
        sa.Column('folder', sa.String(length=1000), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('frames_done', sa.Integer(), nullable=False),
        sa.Column('precision', sa.String(length=32), nullable=True),
        sa.Column('created', sa.DateTime(), nullable=False),
        sa.Column('started_at', sa.DateTime(), nullable=True),
        sa.Column('ended_at', sa.DateTime(), nullable=True),
        sa.Column('pid', sa.Integer(), nullable=True),
        sa.Column('process_started', sa.Float(), nullable=True),
        sa.Column('heartbeat', sa.DateTime(), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.CheckConstraint(STATUSES, name=op.f('ck_prediction_jobs_status')),
        sa.CheckConstraint("model_source IN ('train', 'lacosmic', 'file')", name=op.f('ck_prediction_jobs_model_source')),
        sa.ForeignKeyConstraint(['dataset_id'], ['datasets.id'], name=op.f('fk_prediction_jobs_dataset_id_datasets'),
                                ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_prediction_jobs_run_id_runs'), ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_prediction_jobs')),
    )
    op.create_index(op.f('ix_prediction_jobs_dataset_id'), 'prediction_jobs', ['dataset_id'])
    op.create_index(op.f('ix_prediction_jobs_run_id'), 'prediction_jobs', ['run_id'])
    op.create_index(op.f('ix_prediction_jobs_status'), 'prediction_jobs', ['status'])
    op.create_table(
        'proposals',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('job_id', sa.Integer(), nullable=False),
        sa.Column('frame_id', sa.Integer(), nullable=False),
        sa.Column('threshold', sa.Float(), nullable=False),
        sa.Column('mask_path', sa.String(length=1000), nullable=False),
        sa.Column('probabilities_path', sa.String(length=1000), nullable=True),
        sa.Column('cosmic_pixels', sa.Integer(), nullable=False),
        sa.Column('cosmics', sa.Integer(), nullable=False),
        sa.Column('created', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['job_id'], ['prediction_jobs.id'], name=op.f('fk_proposals_job_id_prediction_jobs'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['frame_id'], ['frames.id'], name=op.f('fk_proposals_frame_id_frames'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_proposals')),
        sa.UniqueConstraint('job_id', 'frame_id', name='uq_proposals_job_frame'),
    )
    op.create_index(op.f('ix_proposals_job_id'), 'proposals', ['job_id'])
    op.create_index(op.f('ix_proposals_frame_id'), 'proposals', ['frame_id'])
    with op.batch_alter_table('mask_revisions') as batch:
        batch.add_column(sa.Column('proposal_id', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('changed_pixels', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('changed_cosmics', sa.Integer(), nullable=True))
        batch.create_foreign_key(op.f('fk_mask_revisions_proposal_id_proposals'), 'proposals', ['proposal_id'], ['id'],
                                 ondelete='SET NULL')
        batch.drop_constraint(op.f('ck_mask_revisions_source'), type_='check')
        batch.create_check_constraint(op.f('ck_mask_revisions_source'),
                                      "source IN ('uploaded', 'drawn', 'predicted', 'corrected')")


def downgrade() -> None:
    # A corrected proposal reads as drawn by hand once the proposals are gone.
    op.execute("UPDATE mask_revisions SET source = 'drawn' WHERE source = 'corrected'")
    with op.batch_alter_table('mask_revisions') as batch:
        batch.drop_constraint(op.f('ck_mask_revisions_source'), type_='check')
        batch.create_check_constraint(op.f('ck_mask_revisions_source'), "source IN ('uploaded', 'drawn', 'predicted')")
        batch.drop_constraint(op.f('fk_mask_revisions_proposal_id_proposals'), type_='foreignkey')
        batch.drop_column('changed_cosmics')
        batch.drop_column('changed_pixels')
        batch.drop_column('proposal_id')
    op.drop_index(op.f('ix_proposals_frame_id'), table_name='proposals')
    op.drop_index(op.f('ix_proposals_job_id'), table_name='proposals')
    op.drop_table('proposals')
    op.drop_index(op.f('ix_prediction_jobs_status'), table_name='prediction_jobs')
    op.drop_index(op.f('ix_prediction_jobs_run_id'), table_name='prediction_jobs')
    op.drop_index(op.f('ix_prediction_jobs_dataset_id'), table_name='prediction_jobs')
    op.drop_table('prediction_jobs')
