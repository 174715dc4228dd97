"""deployments and their revisions

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
    op.create_table('deployments',
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.Column('created', sa.BigInteger(), nullable=False),
    sa.Column('created_by', sa.String(length=250), nullable=False),
    sa.Column('updated', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_deployments'))
    )
    op.create_table('deployment_revisions',
    sa.Column('deployment', sa.String(length=128), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('strategy', sa.String(length=16), nullable=False),
    sa.Column('routes', sa.Text(), nullable=False),
    sa.Column('sticky_by', sa.String(length=128), nullable=True),
    sa.Column('restores', sa.Integer(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('analysis', sa.Text(), nullable=True),
    sa.Column('actor', sa.String(length=250), nullable=False),
    sa.Column('created', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['deployment'], ['deployments.name'],
                            name=op.f('fk_deployment_revisions_deployment_deployments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('deployment', 'revision', name=op.f('pk_deployment_revisions'))
    )


def downgrade() -> None:
    op.drop_table('deployment_revisions')
    op.drop_table('deployments')
