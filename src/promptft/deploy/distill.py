"""Knowledge distillation (PET's last step): a teacher (or an ensemble) labels an unlabelled pool with
soft labels, and a small student learns them through the ordinary trainer with the `SoftLabel` objective.

Building blocks only; `promptft.recipes.distill` reads the files, caches the labels and runs the job.

* `teacher_logits`: each teacher's label logits on the pool, normalised per teacher (`log_softmax`) and
  averaged over the ensemble (PET's uniform ensemble, in log space). Temperature is applied later, by the
  objective, so one labelling serves any temperature.
* `soft_examples`: pool examples whose label is the teacher's probability row at temperature T
  (single-label), or the teacher's predicted value (regression: the student learns the number itself).
* `build_student`: any Hugging Face encoder (default the offline all-MiniLM-L6-v2) with a new head,
  i.e. a `HeadClassifier`, whose own objective stays single-label (or regression): once trained it is a
  normal promptft classifier (predict, save, load, serve). The soft-label objective is handed to the
  Trainer only.

Covered: single-label teachers (softmax KL at temperature T) and regression teachers (the student
regresses the teacher's predicted values; MSE on the position in the range). Multi-label teachers are
refused with a clear error (their soft targets would need a BCE-on-probabilities objective).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch

from promptft.classifiers import BaseClassifier, HeadClassifier
from promptft.classifiers.ensemble import combine_log_probs, label_order, soft_targets
from promptft.data import Example
from promptft.errors import PromptFTError
from promptft.objectives import Objective, Regression, SingleLabel, SoftLabel

log = logging.getLogger(__name__)

DEFAULT_STUDENT = "minilm-l6"
DISTILLABLE = ("single_label", "soft_label", "regression")


def teacher_task(teachers: Sequence[BaseClassifier]) -> Objective:
    """The objective the teachers share (single-label or regression); an error when they disagree on
    labels, fields or task type, or when their task cannot be distilled yet."""
    if not teachers:
        raise PromptFTError("distillation needs at least one teacher: give a run folder")
    first = teachers[0]
    for other in teachers[1:]:
        label_order(first.labels, other.labels, "the teachers of an ensemble")  # any order, one set
        if tuple(other.fields) != tuple(first.fields):
            raise PromptFTError(
                f"the teachers read different fields ({list(first.fields)} vs {list(other.fields)}): "
                "an ensemble must read the same columns"
            )
        if other.objective.name != first.objective.name:
            raise PromptFTError(
                f"the teachers mix task types ({first.objective.name}, {other.objective.name}): "
                "distil one task type at a time"
            )
    objective = first.objective
    if objective.name not in DISTILLABLE:
        raise PromptFTError(
            f"distilling a {objective.name} teacher is not supported: teachers may be single-label or "
            "regression classifiers"
        )
    return objective


def teacher_logits(
    teachers: Sequence[BaseClassifier],
    examples: Sequence[Example],
    batch_size: int = 32,
    progress: bool = False,
) -> torch.Tensor:
    """`[n, n_labels]` in input order. Single-label: the ensemble's mean of each teacher's normalised
    log-probabilities (`log_softmax` of its label logits). Regression: the mean of the teachers' predicted
    values as one column."""
    objective = teacher_task(teachers)
    rows = []
    for teacher in teachers:
        logits = teacher.logits_encoded(teacher.encode(examples), batch_size, progress)
        order = label_order(teachers[0].labels, teacher.labels)
        if order is not None:  # into the first teacher's label order, which the student keeps
            logits = logits[:, order]
        if objective.name == "regression":
            rows.append(teacher.objective.scores(logits)[:, None])
        else:
            rows.append(torch.log_softmax(logits.float(), dim=-1))
    if objective.name == "regression":
        return torch.stack(rows).mean(0)
    return combine_log_probs(torch.stack(rows))  # equal weights, PET's mean in log space


def soft_probabilities(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """The teacher's distribution at temperature T (T > 1 softens it)."""
    return soft_targets(logits, temperature)


def soft_examples(
    examples: Sequence[Example], logits: torch.Tensor, objective: Objective, temperature: float
) -> list[Example]:
    """The pool with the teacher's labels: probability rows (single-label) or values (regression)."""
    if len(examples) != len(logits):
        raise ValueError(f"{len(examples)} examples but {len(logits)} rows of teacher logits")
    if objective.name == "regression":
        return [Example(ex.fields, float(v)) for ex, v in zip(examples, logits[:, 0].tolist(), strict=True)]
    probs = soft_probabilities(logits, temperature).tolist()
    return [Example(ex.fields, tuple(float(p) for p in row)) for ex, row in zip(examples, probs, strict=True)]


def student_objective(teacher: Objective, temperature: float) -> tuple[Objective, Objective]:
    """(the objective the Trainer optimises, the one the student keeps for predict/save)."""
    if teacher.name == "regression":
        value_range = teacher.value_range  # type: ignore[attr-defined]
        head = Regression(value_range=value_range)
        return head, head
    return SoftLabel(teacher.labels, temperature), SingleLabel(teacher.labels)


def build_student(
    teacher: Objective,
    fields: Sequence[str],
    student: str = DEFAULT_STUDENT,
    *,
    max_length: int = 128,
    device=None,
    seed: int | None = 42,
) -> HeadClassifier:
    """A fresh student: `student` (alias, folder or hub id of any HF encoder or LM) with a new head for
    the teacher's labels (one output for regression)."""
    _, keep = student_objective(teacher, 1.0)
    return HeadClassifier.from_model(
        student,
        list(keep.labels),
        fields=tuple(fields),
        objective=keep,
        finetune="full",
        max_length=max_length,
        device=device,
        seed=seed,
    )
