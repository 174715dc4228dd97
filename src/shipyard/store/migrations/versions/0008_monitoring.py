"""monitor reports, alerts, silences and reference sketches

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('monitor_reports',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('monitor', sa.String(length=128), nullable=False),
    sa.Column('model', sa.String(length=128), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('deployment', sa.String(length=128), nullable=True),
    sa.Column('window_start', sa.BigInteger(), nullable=True),
    sa.Column('window_end', sa.BigInteger(), nullable=True),
    sa.Column('rows', sa.BigInteger(), nullable=False),
    sa.Column('reference', sa.String(length=160), nullable=True),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('drift_share', sa.Float(), nullable=True),
    sa.Column('report', sa.Text(), nullable=False),
    sa.Column('created', sa.BigInteger(), nullable=False),
    sa.Column('created_by', sa.String(length=250), nullable=False),
    sa.Column('updated', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_monitor_reports'))
    )
    op.create_index('ix_monitor_reports_monitor', 'monitor_reports', ['monitor', 'id'], unique=False)
    op.create_table('monitor_alerts',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('monitor', sa.String(length=128), nullable=False),
    sa.Column('rule', sa.String(length=64), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('value', sa.Float(), nullable=True),
    sa.Column('threshold', sa.Float(), nullable=True),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('started', sa.BigInteger(), nullable=False),
    sa.Column('updated', sa.BigInteger(), nullable=False),
    sa.Column('resolved_at', sa.BigInteger(), nullable=True),
    sa.Column('first_report', sa.BigInteger(), nullable=False),
    sa.Column('last_report', sa.BigInteger(), nullable=False),
    sa.Column('acknowledged_by', sa.String(length=250), nullable=True),
    sa.Column('acknowledged_at', sa.BigInteger(), nullable=True),
    sa.Column('notified_at', sa.BigInteger(), nullable=True),
    sa.Column('notifications', sa.Integer(), server_default='0', nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_monitor_alerts'))
    )
    op.create_index('ix_monitor_alerts_monitor_rule_state', 'monitor_alerts', ['monitor', 'rule', 'state'],
                    unique=False)
    op.create_table('alert_silences',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('monitor', sa.String(length=128), nullable=False),
    sa.Column('rule', sa.String(length=64), nullable=True),
    sa.Column('until', sa.BigInteger(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('created', sa.BigInteger(), nullable=False),
    sa.Column('created_by', sa.String(length=250), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alert_silences'))
    )
    op.create_index('ix_alert_silences_monitor', 'alert_silences', ['monitor', 'until'], unique=False)
    op.create_table('reference_sketches',
    sa.Column('key', sa.String(length=250), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('created', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_reference_sketches'))
    )
    op.create_index('ix_reference_sketches_digest', 'reference_sketches', ['digest'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_reference_sketches_digest', table_name='reference_sketches')
    op.drop_table('reference_sketches')
    op.drop_index('ix_alert_silences_monitor', table_name='alert_silences')
    op.drop_table('alert_silences')
    op.drop_index('ix_monitor_alerts_monitor_rule_state', table_name='monitor_alerts')
    op.drop_table('monitor_alerts')
    op.drop_index('ix_monitor_reports_monitor', table_name='monitor_reports')
    op.drop_table('monitor_reports')
