"""Metrics, diagnostics and reports: judge data and trained models without training them."""

from promptft.evaluation.audit import audit
from promptft.evaluation.audit_report import AuditReport, Finding, RowRef, Severity
from promptft.evaluation.fitting import (
    FitDiagnosis,
    FitEvidence,
    diagnose_fitting,
    load_history,
    plot_fitting,
)
from promptft.evaluation.metrics import classification_metrics
from promptft.evaluation.report import EvaluationReport, evaluation_report, expected_calibration_error

__all__ = [
    "AuditReport",
    "EvaluationReport",
    "Finding",
    "FitDiagnosis",
    "FitEvidence",
    "RowRef",
    "Severity",
    "audit",
    "classification_metrics",
    "diagnose_fitting",
    "evaluation_report",
    "expected_calibration_error",
    "load_history",
    "plot_fitting",
]
