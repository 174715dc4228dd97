"""Governance: the audit trail, model cards and the production-readiness checklist."""
