"""datasets, validations and lineage

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
    op.create_table('datasets',
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('created', sa.BigInteger(), nullable=False),
    sa.Column('created_by', sa.String(length=250), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_datasets'))
    )
    op.create_table('lineage_edges',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('src_kind', sa.String(length=32), nullable=False),
    sa.Column('src_id', sa.String(length=250), nullable=False),
    sa.Column('dst_kind', sa.String(length=32), nullable=False),
    sa.Column('dst_id', sa.String(length=250), nullable=False),
    sa.Column('relation', sa.String(length=32), nullable=False),
    sa.Column('created', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lineage_edges')),
    sa.UniqueConstraint('src_kind', 'src_id', 'dst_kind', 'dst_id', 'relation', name='uq_lineage_edges_edge')
    )
    with op.batch_alter_table('lineage_edges', schema=None) as batch_op:
        batch_op.create_index('ix_lineage_edges_dst', ['dst_kind', 'dst_id'], unique=False)

    op.create_table('dataset_versions',
    sa.Column('version_id', sa.String(length=160), nullable=False),
    sa.Column('dataset', sa.String(length=128), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('manifest_digest', sa.String(length=64), nullable=False),
    sa.Column('file_count', sa.Integer(), nullable=False),
    sa.Column('total_bytes', sa.BigInteger(), nullable=False),
    sa.Column('row_count', sa.BigInteger(), nullable=True),
    sa.Column('table_digest', sa.String(length=64), nullable=True),
    sa.Column('table_schema', sa.Text(), nullable=True),
    sa.Column('profile', sa.Text(), nullable=True),
    sa.Column('key_columns', sa.Text(), nullable=True),
    sa.Column('source', sa.Text(), nullable=True),
    sa.Column('message', sa.Text(), nullable=True),
    sa.Column('created', sa.BigInteger(), nullable=False),
    sa.Column('created_by', sa.String(length=250), nullable=False),
    sa.ForeignKeyConstraint(['dataset'], ['datasets.name'], name=op.f('fk_dataset_versions_dataset_datasets'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('version_id', name=op.f('pk_dataset_versions')),
    sa.UniqueConstraint('dataset', 'version', name='uq_dataset_versions_dataset_version')
    )
    with op.batch_alter_table('dataset_versions', schema=None) as batch_op:
        batch_op.create_index('ix_dataset_versions_table_digest', ['table_digest'], unique=False)

    op.create_table('data_validations',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('version_id', sa.String(length=160), nullable=False),
    sa.Column('ok', sa.Boolean(), nullable=False),
    sa.Column('errors', sa.Integer(), nullable=False),
    sa.Column('warnings', sa.Integer(), nullable=False),
    sa.Column('schema_digest', sa.String(length=64), nullable=False),
    sa.Column('reference_version', sa.String(length=160), nullable=True),
    sa.Column('report', sa.Text(), nullable=False),
    sa.Column('created', sa.BigInteger(), nullable=False),
    sa.Column('created_by', sa.String(length=250), nullable=False),
    sa.ForeignKeyConstraint(['version_id'], ['dataset_versions.version_id'], name=op.f('fk_data_validations_version_id_dataset_versions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_data_validations'))
    )
    with op.batch_alter_table('data_validations', schema=None) as batch_op:
        batch_op.create_index('ix_data_validations_version', ['version_id'], unique=False)

    op.create_table('dataset_files',
    sa.Column('version_id', sa.String(length=160), nullable=False),
    sa.Column('path', sa.String(length=1024), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['version_id'], ['dataset_versions.version_id'], name=op.f('fk_dataset_files_version_id_dataset_versions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('version_id', 'path', name=op.f('pk_dataset_files'))
    )
    with op.batch_alter_table('dataset_files', schema=None) as batch_op:
        batch_op.create_index('ix_dataset_files_digest', ['digest'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('dataset_files', schema=None) as batch_op:
        batch_op.drop_index('ix_dataset_files_digest')

    op.drop_table('dataset_files')
    with op.batch_alter_table('data_validations', schema=None) as batch_op:
        batch_op.drop_index('ix_data_validations_version')

    op.drop_table('data_validations')
    with op.batch_alter_table('dataset_versions', schema=None) as batch_op:
        batch_op.drop_index('ix_dataset_versions_table_digest')

    op.drop_table('dataset_versions')
    with op.batch_alter_table('lineage_edges', schema=None) as batch_op:
        batch_op.drop_index('ix_lineage_edges_dst')

    op.drop_table('lineage_edges')
    op.drop_table('datasets')
