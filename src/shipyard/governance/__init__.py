"""Governance: the audit trail's readers and verification (model cards and readiness come later)."""
