"""model registry, gates and reviews

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
    op.create_table('alias_history',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('model', sa.String(length=128), nullable=False),
    sa.Column('alias', sa.String(length=64), nullable=False),
    sa.Column('from_version', sa.Integer(), nullable=True),
    sa.Column('to_version', sa.Integer(), nullable=True),
    sa.Column('actor', sa.String(length=250), nullable=False),
    sa.Column('time', sa.BigInteger(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alias_history'))
    )
    with op.batch_alter_table('alias_history', schema=None) as batch_op:
        batch_op.create_index('ix_alias_history_model_alias', ['model', 'alias'], unique=False)

    op.create_table('registered_models',
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('created', sa.BigInteger(), nullable=False),
    sa.Column('created_by', sa.String(length=250), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_registered_models'))
    )
    op.create_table('model_aliases',
    sa.Column('model', sa.String(length=128), nullable=False),
    sa.Column('alias', sa.String(length=64), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('updated', sa.BigInteger(), nullable=False),
    sa.Column('updated_by', sa.String(length=250), nullable=False),
    sa.ForeignKeyConstraint(['model'], ['registered_models.name'], name=op.f('fk_model_aliases_model_registered_models'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('model', 'alias', name=op.f('pk_model_aliases'))
    )
    op.create_table('model_versions',
    sa.Column('version_id', sa.String(length=160), nullable=False),
    sa.Column('model', sa.String(length=128), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('flavor', sa.String(length=64), nullable=False),
    sa.Column('artifact_digest', sa.String(length=64), nullable=False),
    sa.Column('artifact_size', sa.BigInteger(), nullable=False),
    sa.Column('flavor_meta', sa.Text(), nullable=False),
    sa.Column('signature', sa.Text(), nullable=True),
    sa.Column('environment', sa.Text(), nullable=False),
    sa.Column('details', sa.Text(), nullable=True),
    sa.Column('metrics', sa.Text(), nullable=True),
    sa.Column('run_id', sa.String(length=32), nullable=True),
    sa.Column('dataset_version', sa.String(length=160), nullable=True),
    sa.Column('status', sa.String(length=16), server_default='active', nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('created', sa.BigInteger(), nullable=False),
    sa.Column('created_by', sa.String(length=250), nullable=False),
    sa.ForeignKeyConstraint(['model'], ['registered_models.name'], name=op.f('fk_model_versions_model_registered_models'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['run_id'], ['runs.run_id'], name=op.f('fk_model_versions_run_id_runs'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('version_id', name=op.f('pk_model_versions')),
    sa.UniqueConstraint('model', 'version', name='uq_model_versions_model_version')
    )
    with op.batch_alter_table('model_versions', schema=None) as batch_op:
        batch_op.create_index('ix_model_versions_artifact_digest', ['artifact_digest'], unique=False)

    op.create_table('gate_results',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('version_id', sa.String(length=160), nullable=False),
    sa.Column('gate', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('result', sa.Text(), nullable=False),
    sa.Column('waived_by', sa.String(length=250), nullable=True),
    sa.Column('waiver_reason', sa.Text(), nullable=True),
    sa.Column('created', sa.BigInteger(), nullable=False),
    sa.Column('created_by', sa.String(length=250), nullable=False),
    sa.ForeignKeyConstraint(['version_id'], ['model_versions.version_id'], name=op.f('fk_gate_results_version_id_model_versions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_gate_results'))
    )
    with op.batch_alter_table('gate_results', schema=None) as batch_op:
        batch_op.create_index('ix_gate_results_version_gate', ['version_id', 'gate'], unique=False)

    op.create_table('reviews',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('version_id', sa.String(length=160), nullable=False),
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('requested_by', sa.String(length=250), nullable=False),
    sa.Column('requested', sa.BigInteger(), nullable=False),
    sa.Column('decided_by', sa.String(length=250), nullable=True),
    sa.Column('decided', sa.BigInteger(), nullable=True),
    sa.Column('notes', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['version_id'], ['model_versions.version_id'], name=op.f('fk_reviews_version_id_model_versions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reviews'))
    )
    with op.batch_alter_table('reviews', schema=None) as batch_op:
        batch_op.create_index('ix_reviews_version_kind', ['version_id', 'kind'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('reviews', schema=None) as batch_op:
        batch_op.drop_index('ix_reviews_version_kind')

    op.drop_table('reviews')
    with op.batch_alter_table('gate_results', schema=None) as batch_op:
        batch_op.drop_index('ix_gate_results_version_gate')

    op.drop_table('gate_results')
    with op.batch_alter_table('model_versions', schema=None) as batch_op:
        batch_op.drop_index('ix_model_versions_artifact_digest')

    op.drop_table('model_versions')
    op.drop_table('model_aliases')
    op.drop_table('registered_models')
    with op.batch_alter_table('alias_history', schema=None) as batch_op:
        batch_op.drop_index('ix_alias_history_model_alias')

    op.drop_table('alias_history')
