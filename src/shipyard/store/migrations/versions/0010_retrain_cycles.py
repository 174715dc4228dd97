"""retraining cycles of deployments

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
    op.create_table('retrain_cycles',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('deployment', sa.String(length=128), nullable=False),
    sa.Column('monitor', sa.String(length=128), nullable=False),
    sa.Column('state', sa.String(length=24), nullable=False),
    sa.Column('trigger', sa.Text(), nullable=False),
    sa.Column('champion', sa.String(length=160), nullable=True),
    sa.Column('challenger', sa.String(length=160), nullable=True),
    sa.Column('run_id', sa.String(length=32), nullable=True),
    sa.Column('evidence', sa.Text(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('created', sa.BigInteger(), nullable=False),
    sa.Column('created_by', sa.String(length=250), nullable=False),
    sa.Column('updated', sa.BigInteger(), nullable=False),
    sa.Column('ended', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_retrain_cycles'))
    )
    op.create_index('ix_retrain_cycles_deployment', 'retrain_cycles', ['deployment', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_retrain_cycles_deployment', table_name='retrain_cycles')
    op.drop_table('retrain_cycles')
