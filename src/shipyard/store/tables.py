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
    UniqueConstraint,
)

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)

ID_LENGTH = 32
# Marks a column that holds the digest of a blob: garbage collection keeps every blob such a column names.
BLOB = {"blob": True}

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
    # Who owns a running run, and when it last showed signs of life: a run whose process died is "lost".
    Column("host", String(255)),
    Column("pid", Integer),
    Column("heartbeat", BigInteger),
    Column("policy_digest", String(64)),  # SHA-256 of shipyard.yaml's lifecycle policy when the run started
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
    Column("digest", String(64), nullable=False, info=BLOB),
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

# One row: the store's id, made with the store. It tells stores apart where names alone would not (the
# OpenLineage namespace), and it moves with the database, not with the workspace folder.
store_identity = Table(
    "store_identity",
    metadata,
    Column("id", String(ID_LENGTH), primary_key=True),
    Column("created", BigInteger, nullable=False),
)

datasets = Table(
    "datasets",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("created", BigInteger, nullable=False),
    Column("created_by", String(KEY_LENGTH), nullable=False),
)

dataset_versions = Table(
    "dataset_versions",
    metadata,
    Column("version_id", String(160), primary_key=True),  # NAME@N
    Column("dataset", String(128), ForeignKey("datasets.name", ondelete="CASCADE"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("kind", String(16), nullable=False),  # files | table
    Column("manifest_digest", String(64), nullable=False),
    Column("file_count", Integer, nullable=False),
    Column("total_bytes", BigInteger, nullable=False),
    Column("row_count", BigInteger),
    Column("table_digest", String(64), info=BLOB),  # the canonical Parquet form of a table
    Column("table_schema", Text),  # JSON: [{"name", "type", "nullable"}]
    Column("profile", Text),  # JSON profile, the reference for validation and drift
    Column("key_columns", Text),  # JSON list, when a key was declared
    Column("source", Text),
    Column("message", Text),
    Column("created", BigInteger, nullable=False),
    Column("created_by", String(KEY_LENGTH), nullable=False),
    UniqueConstraint("dataset", "version", name="uq_dataset_versions_dataset_version"),
    Index("ix_dataset_versions_table_digest", "table_digest"),
)

dataset_files = Table(
    "dataset_files",
    metadata,
    Column("version_id", String(160), ForeignKey("dataset_versions.version_id", ondelete="CASCADE"), primary_key=True),
    Column("path", String(1024), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("digest", String(64), nullable=False, info=BLOB),
    Index("ix_dataset_files_digest", "digest"),
)

# Every validation of a dataset version, kept as evidence (the readiness checklist reads it).
data_validations = Table(
    "data_validations",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("version_id", String(160), ForeignKey("dataset_versions.version_id", ondelete="CASCADE"), nullable=False),
    Column("ok", Boolean, nullable=False),
    Column("errors", Integer, nullable=False),
    Column("warnings", Integer, nullable=False),
    Column("schema_digest", String(64), nullable=False),
    Column("reference_version", String(160)),
    Column("report", Text, nullable=False),  # JSON
    Column("created", BigInteger, nullable=False),
    Column("created_by", String(KEY_LENGTH), nullable=False),
    Index("ix_data_validations_version", "version_id"),
)

# Edges of the lineage graph: dataset versions, runs and (later) models and deployments.
lineage_edges = Table(
    "lineage_edges",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("src_kind", String(32), nullable=False),
    Column("src_id", String(KEY_LENGTH), nullable=False),
    Column("dst_kind", String(32), nullable=False),
    Column("dst_id", String(KEY_LENGTH), nullable=False),
    Column("relation", String(32), nullable=False),
    Column("created", BigInteger, nullable=False),
    UniqueConstraint("src_kind", "src_id", "dst_kind", "dst_id", "relation", name="uq_lineage_edges_edge"),
    Index("ix_lineage_edges_dst", "dst_kind", "dst_id"),
)

registered_models = Table(
    "registered_models",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("description", Text),
    Column("created", BigInteger, nullable=False),
    Column("created_by", String(KEY_LENGTH), nullable=False),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("version_id", String(160), primary_key=True),  # NAME/N
    Column("model", String(128), ForeignKey("registered_models.name", ondelete="CASCADE"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("flavor", String(64), nullable=False),
    Column("artifact_digest", String(64), nullable=False, info=BLOB),
    Column("artifact_size", BigInteger, nullable=False),
    Column("flavor_meta", Text, nullable=False),  # JSON: what the flavor needs to load the file
    Column("signature", Text),  # JSON: inputs (name, dtype, nullable) and output
    Column("environment", Text, nullable=False),  # JSON: python and package versions
    Column("details", Text),  # JSON: the flavor's description (class, task, params)
    Column("metrics", Text),  # JSON: the run's metrics at registration
    Column("run_id", String(ID_LENGTH), ForeignKey("runs.run_id", ondelete="SET NULL")),
    Column("dataset_version", String(160)),
    Column("status", String(16), nullable=False, server_default="active"),  # active | archived
    Column("description", Text),
    Column("created", BigInteger, nullable=False),
    Column("created_by", String(KEY_LENGTH), nullable=False),
    UniqueConstraint("model", "version", name="uq_model_versions_model_version"),
    Index("ix_model_versions_artifact_digest", "artifact_digest"),
)

model_aliases = Table(
    "model_aliases",
    metadata,
    Column("model", String(128), ForeignKey("registered_models.name", ondelete="CASCADE"), primary_key=True),
    Column("alias", String(64), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("updated", BigInteger, nullable=False),
    Column("updated_by", String(KEY_LENGTH), nullable=False),
)

# Every move of an alias: set, moved from one version to another, or removed.
alias_history = Table(
    "alias_history",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("model", String(128), nullable=False),
    Column("alias", String(64), nullable=False),
    Column("from_version", Integer),
    Column("to_version", Integer),
    Column("actor", String(KEY_LENGTH), nullable=False),
    Column("time", BigInteger, nullable=False),
    Column("reason", Text),
    Index("ix_alias_history_model_alias", "model", "alias"),
)

gate_results = Table(
    "gate_results",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("version_id", String(160), ForeignKey("model_versions.version_id", ondelete="CASCADE"), nullable=False),
    Column("gate", String(32), nullable=False),
    Column("status", String(16), nullable=False),  # PASS | FAIL | NO_BASELINE | WAIVED
    Column("result", Text, nullable=False),  # JSON: checks with their numbers
    Column("waived_by", String(KEY_LENGTH)),
    Column("waiver_reason", Text),
    # What the result was judged against: the champion's version number at the time (None: there was no
    # champion) and the digest of the model's gate policy. Promotion refuses a result when either moved.
    Column("baseline_version", Integer),
    Column("policy_digest", String(64)),
    Column("created", BigInteger, nullable=False),
    Column("created_by", String(KEY_LENGTH), nullable=False),
    Index("ix_gate_results_version_gate", "version_id", "gate"),
)

reviews = Table(
    "reviews",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("version_id", String(160), ForeignKey("model_versions.version_id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("status", String(16), nullable=False),  # requested | approved | rejected
    Column("requested_by", String(KEY_LENGTH), nullable=False),
    Column("requested", BigInteger, nullable=False),
    Column("decided_by", String(KEY_LENGTH)),
    Column("decided", BigInteger),
    Column("notes", Text),
    Index("ix_reviews_version_kind", "version_id", "kind"),
)

# The prediction log: one row per Parquet blob of logged requests (one blob per model version per flush).
prediction_batches = Table(
    "prediction_batches",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("model", String(128), nullable=False),
    Column("version", Integer, nullable=False),
    Column("digest", String(64), nullable=False, info=BLOB),
    Column("size", BigInteger, nullable=False),
    Column("requests", Integer, nullable=False),
    Column("rows", BigInteger, nullable=False),
    Column("first_timestamp", BigInteger, nullable=False),  # ms: when its oldest request arrived
    Column("last_timestamp", BigInteger, nullable=False),
    Column("written_at", BigInteger, nullable=False),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    # A batch written again (a retry after an unclear commit, a spill file re-read after a crash) has the
    # same bytes, so the digest makes the write idempotent.
    UniqueConstraint("digest", name="uq_prediction_batches_digest"),
    Index("ix_prediction_batches_model_version_last", "model", "version", "last_timestamp"),
)

# Ground truth for logged requests, kept even when the request is not (yet) in the log.
feedback = Table(
    "feedback",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("model", String(128), nullable=False),
    Column("request_id", String(KEY_LENGTH), nullable=False),
    Column("row", Integer),  # None: the whole request
    Column("value", Text, nullable=False),  # JSON
    Column("received_at", BigInteger, nullable=False),
    Column("actor", String(KEY_LENGTH), nullable=False),
    Index("ix_feedback_model_request", "model", "request_id"),
)


def blob_references() -> list[Column[str]]:
    """Every column marked as holding a blob digest, in every table (so a new table cannot be forgotten)."""
    return [column for table in metadata.sorted_tables for column in table.columns if column.info.get("blob")]

# A named endpoint and the number of the revision in force: the one row a server polls to follow it.
deployments = Table(
    "deployments",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("revision", Integer, nullable=False),
    Column("deleted", Boolean, nullable=False),
    Column("created", BigInteger, nullable=False),
    Column("created_by", String(KEY_LENGTH), nullable=False),
    Column("updated", BigInteger, nullable=False),
)

# Every change of a deployment: the routes it set, why, by whom, and (for automated canary steps) the
# policy and the numbers the decision was taken on. Never updated; a rollback adds a revision.
deployment_revisions = Table(
    "deployment_revisions",
    metadata,
    Column("deployment", String(128), ForeignKey("deployments.name", ondelete="CASCADE"), primary_key=True),
    Column("revision", Integer, primary_key=True),
    Column("strategy", String(16), nullable=False),  # single | canary | shadow | ab | deleted
    Column("routes", Text, nullable=False),  # JSON: [{role, label, model, version, weight}]
    Column("sticky_by", String(128)),
    Column("restores", Integer),  # a rollback: the revision whose routes it restores
    Column("reason", Text),
    Column("analysis", Text),  # JSON: the analysis policy and the decision with its numbers
    Column("actor", String(KEY_LENGTH), nullable=False),
    Column("created", BigInteger, nullable=False),
)

# Monitoring: each run of a monitor keeps its report (drift, performance, health) as evidence. The window
# is the span of the prediction log it covered; `updated` is set when late feedback recomputed its performance.
monitor_reports = Table(
    "monitor_reports",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("monitor", String(128), nullable=False),
    Column("model", String(128), nullable=False),
    Column("version", Integer, nullable=False),
    Column("deployment", String(128)),
    Column("window_start", BigInteger),  # ms; None: the window held no prediction
    Column("window_end", BigInteger),
    Column("rows", BigInteger, nullable=False),
    Column("reference", String(160)),  # the dataset version compared against
    Column("status", String(24), nullable=False),  # ok | alert | insufficient data
    Column("drift_share", Float),
    Column("report", Text, nullable=False),  # JSON
    Column("created", BigInteger, nullable=False),
    Column("created_by", String(KEY_LENGTH), nullable=False),
    Column("updated", BigInteger),
    Index("ix_monitor_reports_monitor", "monitor", "id"),
)

# An alert is one episode of a rule being broken: it fires, stays firing across reports (one notification,
# then again every repeat interval unless acknowledged) and is resolved when a report no longer breaks it.
monitor_alerts = Table(
    "monitor_alerts",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("monitor", String(128), nullable=False),
    Column("rule", String(64), nullable=False),
    Column("severity", String(16), nullable=False),  # info | warning | critical
    Column("state", String(16), nullable=False),  # firing | resolved
    Column("value", Float),
    Column("threshold", Float),
    Column("message", Text, nullable=False),
    Column("started", BigInteger, nullable=False),
    Column("updated", BigInteger, nullable=False),
    Column("resolved_at", BigInteger),
    Column("first_report", BigInteger, nullable=False),
    Column("last_report", BigInteger, nullable=False),
    Column("acknowledged_by", String(KEY_LENGTH)),
    Column("acknowledged_at", BigInteger),
    Column("notified_at", BigInteger),
    Column("notifications", Integer, nullable=False, server_default="0"),
    Index("ix_monitor_alerts_monitor_rule_state", "monitor", "rule", "state"),
)

# A silence keeps a monitor's alerts (one rule's, or all when rule is None) from being sent until `until`.
alert_silences = Table(
    "alert_silences",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("monitor", String(128), nullable=False),
    Column("rule", String(64)),
    Column("until", BigInteger, nullable=False),
    Column("reason", Text),
    Column("created", BigInteger, nullable=False),
    Column("created_by", String(KEY_LENGTH), nullable=False),
    Index("ix_alert_silences_monitor", "monitor", "until"),
)

# The drift reference of a dataset version, sketched once (quantiles, category counts) and kept as a blob,
# so that monitors do not read the training data again.
reference_sketches = Table(
    "reference_sketches",
    metadata,
    Column("key", String(KEY_LENGTH), primary_key=True),  # the table's digest, the columns, the sketch format
    Column("digest", String(64), nullable=False, info=BLOB),
    Column("created", BigInteger, nullable=False),
    Index("ix_reference_sketches_digest", "digest"),
)

# A lease: who may act alone for a while (one controller among several processes). `token` grows with every
# change of holder, so a holder that lost its lease can be told apart from the one that took it (fencing).
leases = Table(
    "leases",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("holder", String(KEY_LENGTH), nullable=False),
    Column("token", BigInteger, nullable=False),
    Column("acquired", BigInteger, nullable=False),
    Column("expires", BigInteger, nullable=False),
)

# A retraining cycle of a deployment, from the alerts that started it to the champion kept or replaced. Each change
# of state is a compare-and-set under the controller's lease, audited with the evidence it was decided on.
retrain_cycles = Table(
    "retrain_cycles",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("deployment", String(128), nullable=False),
    Column("monitor", String(128), nullable=False),
    Column("state", String(24), nullable=False),
    Column("trigger", Text, nullable=False),  # JSON: the report and the alerts that started it
    Column("champion", String(160)),  # the version serving when it started
    Column("challenger", String(160)),
    Column("run_id", String(ID_LENGTH)),
    Column("evidence", Text, nullable=False),  # JSON: per state reached, what it was decided on
    Column("reason", Text),
    Column("created", BigInteger, nullable=False),
    Column("created_by", String(KEY_LENGTH), nullable=False),
    Column("updated", BigInteger, nullable=False),
    Column("ended", BigInteger),
    Index("ix_retrain_cycles_deployment", "deployment", "id"),
)

# A version of a feature view: its definition as declared in Python (JSON) and the fingerprint that decides whether
# applying it again makes a new version.
feature_views = Table(
    "feature_views",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("definition", Text, nullable=False),  # JSON: entities, timestamps, source, features, TTL, transform
    Column("created", BigInteger, nullable=False),
    Column("created_by", String(KEY_LENGTH), nullable=False),
)
