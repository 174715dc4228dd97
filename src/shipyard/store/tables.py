"""The metadata schema as SQLAlchemy Core tables; Alembic migrations create and evolve it."""

from __future__ import annotations

from shipyard.store import KEY_LENGTH
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)

ID_LENGTH = 32

runs = Table(
    "runs",
    metadata,
    Column("run_id", String(ID_LENGTH), primary_key=True),
    Column("name", String(KEY_LENGTH), nullable=False),
    Column("experiment", String(KEY_LENGTH), nullable=False),
    Column("parent_id", String(ID_LENGTH), ForeignKey("runs.run_id", ondelete="SET NULL")),
    Column("status", String(16), nullable=False),
    Column("lifecycle", String(16), nullable=False, server_default="active"),
    Column("user", String(KEY_LENGTH), nullable=False),
    Column("start_time", BigInteger, nullable=False),
    Column("end_time", BigInteger),
    Column("git_commit", String(64)),
    Column("git_dirty", Boolean),
    Column("source", Text),
    Column("environment", Text),  # JSON: python, platform, package versions
    Column("cpu_seconds", Float),
    Column("peak_memory_bytes", BigInteger),
    Column("wall_seconds", Float),
    Column("error", Text),
    Index("ix_runs_experiment_start", "experiment", "start_time"),
    Index("ix_runs_parent", "parent_id"),
)

params = Table(
    "params",
    metadata,
    Column("run_id", String(ID_LENGTH), ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(KEY_LENGTH), primary_key=True),
    Column("value", Text, nullable=False),
)

tags = Table(
    "tags",
    metadata,
    Column("run_id", String(ID_LENGTH), ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(KEY_LENGTH), primary_key=True),
    Column("value", Text, nullable=False),
)

metrics = Table(
    "metrics",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("run_id", String(ID_LENGTH), ForeignKey("runs.run_id", ondelete="CASCADE"), nullable=False),
    Column("key", String(KEY_LENGTH), nullable=False),
    Column("value", Float, nullable=False),
    Column("step", BigInteger, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Index("ix_metrics_run_key_step", "run_id", "key", "step"),
)

# The latest value of each (run, metric): search filters and orders on this, never on histories.
metric_latest = Table(
    "metric_latest",
    metadata,
    Column("run_id", String(ID_LENGTH), ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(KEY_LENGTH), primary_key=True),
    Column("value", Float, nullable=False),
    Column("step", BigInteger, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Index("ix_metric_latest_key_value", "key", "value"),
)

artifacts = Table(
    "artifacts",
    metadata,
    Column("run_id", String(ID_LENGTH), ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
    Column("path", String(1024), primary_key=True),
    Column("digest", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("created", BigInteger, nullable=False),
    Index("ix_artifacts_digest", "digest"),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("time", BigInteger, nullable=False),
    Column("actor", String(KEY_LENGTH), nullable=False),
    Column("action", String(64), nullable=False),
    Column("object_kind", String(64), nullable=False),
    Column("object_id", String(KEY_LENGTH), nullable=False),
    Column("payload", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_audit_events_object", "object_kind", "object_id"),
    Index("ix_audit_events_actor", "actor"),
)

# One row: the newest event's sequence and hash. Locking it serialises appends to the chain.
audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)

# Columns holding blob digests; garbage collection keeps every blob named here.
BLOB_REFERENCES = [artifacts.c.digest]
