"""Metrics, diagnostics and reports: judge data and trained models without training them."""

from promptft.evaluation.audit import audit
from promptft.evaluation.audit_report import AuditReport, Finding, RowRef, Severity
from promptft.evaluation.metrics import classification_metrics

__all__ = ["AuditReport", "Finding", "RowRef", "Severity", "audit", "classification_metrics"]
