"""run liveness (host, pid, heartbeat), policy digests, gate baselines

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
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('host', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('pid', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('heartbeat', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('policy_digest', sa.String(length=64), nullable=True))
    with op.batch_alter_table('gate_results', schema=None) as batch_op:
        batch_op.add_column(sa.Column('baseline_version', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('policy_digest', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('gate_results', schema=None) as batch_op:
        batch_op.drop_column('policy_digest')
        batch_op.drop_column('baseline_version')
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_column('policy_digest')
        batch_op.drop_column('heartbeat')
        batch_op.drop_column('pid')
        batch_op.drop_column('host')
