"""Initial schema: datasets, frames, mask revisions, runs, epoch metrics, evaluations.

Dates are stored as naive UTC (db.models.UTCDateTime adds the zone back on reading).

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('datasets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('folder', sa.String(length=1000), nullable=False),
    sa.Column('source', sa.Text(), nullable=True),
    sa.Column('created', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_datasets')),
    sa.UniqueConstraint('name', name=op.f('uq_datasets_name'))
    )
    op.create_table('frames',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('dataset_id', sa.Integer(), nullable=False),
    sa.Column('split', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('stem', sa.String(length=255), nullable=False),
    sa.Column('path', sa.String(length=1000), nullable=False),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('dtype', sa.String(length=16), nullable=False),
    sa.Column('bit_depth', sa.Integer(), nullable=False),
    sa.Column('created', sa.DateTime(), nullable=False),
    sa.CheckConstraint("split IN ('train', 'validation', 'test', 'real')", name=op.f('ck_frames_split')),
    sa.ForeignKeyConstraint(['dataset_id'], ['datasets.id'], name=op.f('fk_frames_dataset_id_datasets'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_frames')),
    sa.UniqueConstraint('dataset_id', 'split', 'stem', name='uq_frames_dataset_split_stem')
    )
    with op.batch_alter_table('frames', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_frames_dataset_id'), ['dataset_id'], unique=False)

    op.create_table('runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('dataset_id', sa.Integer(), nullable=False),
    sa.Column('config', sa.JSON(), nullable=False),
    sa.Column('threshold', sa.Float(), nullable=False),
    sa.Column('backbone_weights', sa.Text(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created', sa.DateTime(), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=True),
    sa.Column('ended_at', sa.DateTime(), nullable=True),
    sa.Column('pid', sa.Integer(), nullable=True),
    sa.Column('process_started', sa.Float(), nullable=True),
    sa.Column('heartbeat', sa.DateTime(), nullable=True),
    sa.Column('run_dir', sa.String(length=1000), nullable=False),
    sa.Column('checkpoint_dir', sa.String(length=1000), nullable=True),
    sa.Column('best_checkpoint', sa.String(length=1000), nullable=True),
    sa.Column('last_checkpoint', sa.String(length=1000), nullable=True),
    sa.Column('model_path', sa.String(length=1000), nullable=True),
    sa.Column('epochs_total', sa.Integer(), nullable=True),
    sa.Column('steps_per_epoch', sa.Integer(), nullable=True),
    sa.Column('current_epoch', sa.Integer(), nullable=True),
    sa.Column('current_step', sa.Integer(), nullable=True),
    sa.Column('epochs_run', sa.Integer(), nullable=False),
    sa.Column('best_epoch', sa.Integer(), nullable=True),
    sa.Column('best_val_loss', sa.Float(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.CheckConstraint("status IN ('queued', 'running', 'finished', 'failed', 'cancelled')", name=op.f('ck_runs_status')),
    sa.ForeignKeyConstraint(['dataset_id'], ['datasets.id'], name=op.f('fk_runs_dataset_id_datasets'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_runs'))
    )
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_runs_dataset_id'), ['dataset_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_runs_status'), ['status'], unique=False)

    op.create_table('epoch_metrics',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('epoch', sa.Integer(), nullable=False),
    sa.Column('metric', sa.String(length=64), nullable=False),
    sa.Column('value', sa.Float(), nullable=True),
    sa.Column('created', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_epoch_metrics_run_id_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_epoch_metrics')),
    sa.UniqueConstraint('run_id', 'epoch', 'metric', name='uq_epoch_metrics_run_epoch_metric')
    )
    with op.batch_alter_table('epoch_metrics', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_epoch_metrics_run_id'), ['run_id'], unique=False)

    op.create_table('evaluations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('split', sa.String(length=16), nullable=False),
    sa.Column('threshold', sa.Float(), nullable=False),
    sa.Column('checkpoint', sa.String(length=1000), nullable=False),
    sa.Column('predictions_dir', sa.String(length=1000), nullable=False),
    sa.Column('summary', sa.JSON(), nullable=False),
    sa.Column('pooled', sa.JSON(), nullable=False),
    sa.Column('created', sa.DateTime(), nullable=False),
    sa.CheckConstraint("split IN ('train', 'validation', 'test', 'real')", name=op.f('ck_evaluations_split')),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_evaluations_run_id_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_evaluations'))
    )
    with op.batch_alter_table('evaluations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_evaluations_run_id'), ['run_id'], unique=False)

    op.create_table('mask_revisions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('frame_id', sa.Integer(), nullable=False),
    sa.Column('path', sa.String(length=1000), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.Column('restored_from_id', sa.Integer(), nullable=True),
    sa.Column('author', sa.String(length=200), nullable=False),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.Column('cosmic_pixels', sa.Integer(), nullable=False),
    sa.Column('created', sa.DateTime(), nullable=False),
    sa.CheckConstraint("source IN ('uploaded', 'drawn', 'predicted')", name=op.f('ck_mask_revisions_source')),
    sa.ForeignKeyConstraint(['frame_id'], ['frames.id'], name=op.f('fk_mask_revisions_frame_id_frames'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['restored_from_id'], ['mask_revisions.id'], name=op.f('fk_mask_revisions_restored_from_id_mask_revisions'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_mask_revisions_run_id_runs'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mask_revisions'))
    )
    with op.batch_alter_table('mask_revisions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_mask_revisions_frame_id'), ['frame_id'], unique=False)

    op.create_table('evaluation_results',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('evaluation_id', sa.Integer(), nullable=False),
    sa.Column('frame_id', sa.Integer(), nullable=True),
    sa.Column('revision_id', sa.Integer(), nullable=True),
    sa.Column('image', sa.String(length=255), nullable=False),
    sa.Column('iou', sa.Float(), nullable=True),
    sa.Column('dice', sa.Float(), nullable=True),
    sa.Column('pixel_accuracy', sa.Float(), nullable=True),
    sa.Column('precision', sa.Float(), nullable=True),
    sa.Column('recall', sa.Float(), nullable=True),
    sa.Column('f1', sa.Float(), nullable=True),
    sa.Column('specificity', sa.Float(), nullable=True),
    sa.Column('count_score', sa.Float(), nullable=True),
    sa.Column('object_recall', sa.Float(), nullable=True),
    sa.Column('object_precision', sa.Float(), nullable=True),
    sa.Column('true_count', sa.Integer(), nullable=False),
    sa.Column('pred_count', sa.Integer(), nullable=False),
    sa.Column('prediction_path', sa.String(length=1000), nullable=True),
    sa.ForeignKeyConstraint(['evaluation_id'], ['evaluations.id'], name=op.f('fk_evaluation_results_evaluation_id_evaluations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['frame_id'], ['frames.id'], name=op.f('fk_evaluation_results_frame_id_frames'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['revision_id'], ['mask_revisions.id'], name=op.f('fk_evaluation_results_revision_id_mask_revisions'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_evaluation_results'))
    )
    with op.batch_alter_table('evaluation_results', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_evaluation_results_evaluation_id'), ['evaluation_id'], unique=False)

    op.create_table('run_revisions',
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('frame_id', sa.Integer(), nullable=False),
    sa.Column('revision_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['frame_id'], ['frames.id'], name=op.f('fk_run_revisions_frame_id_frames'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['revision_id'], ['mask_revisions.id'], name=op.f('fk_run_revisions_revision_id_mask_revisions'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_run_revisions_run_id_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id', 'frame_id', name=op.f('pk_run_revisions'))
    )
    with op.batch_alter_table('run_revisions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_run_revisions_revision_id'), ['revision_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('run_revisions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_run_revisions_revision_id'))

    op.drop_table('run_revisions')
    with op.batch_alter_table('evaluation_results', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_evaluation_results_evaluation_id'))

    op.drop_table('evaluation_results')
    with op.batch_alter_table('mask_revisions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_mask_revisions_frame_id'))

    op.drop_table('mask_revisions')
    with op.batch_alter_table('evaluations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_evaluations_run_id'))

    op.drop_table('evaluations')
    with op.batch_alter_table('epoch_metrics', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_epoch_metrics_run_id'))

    op.drop_table('epoch_metrics')
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_runs_status'))
        batch_op.drop_index(batch_op.f('ix_runs_dataset_id'))

    op.drop_table('runs')
    with op.batch_alter_table('frames', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_frames_dataset_id'))

    op.drop_table('frames')
    op.drop_table('datasets')
