"""the store's own id (store_identity), made once with the store

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import time
import uuid

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('store_identity',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('created', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_store_identity'))
    )
    op.execute(sa.text("INSERT INTO store_identity (id, created) VALUES (:id, :created)")
               .bindparams(id=uuid.uuid4().hex, created=time.time_ns() // 1_000_000))


def downgrade() -> None:
    op.drop_table('store_identity')
