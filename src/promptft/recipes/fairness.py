"""The fairness recipe: audit a trained classifier (a run folder) for unequal treatment of groups of people.

    from promptft.recipes.fairness import fairness_audit
    result = fairness_audit("runs/sst2", data="test.tsv", group_column="group", probe=True)
    result.save("runs/sst2/fairness")

Parts, each optional: group fairness over a column of the data (fairlearn's MetricFrame); counterfactual
identity-term swaps in the data's texts; the equity probe (templates, no data needed); HateCheck for a
hate-speech classifier. `counterfactual_augment` is the matching mitigation: add every training text's
identity-swapped rewrites, with the same label, and train again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptft.config import DataConfig
from promptft.data import Example
from promptft.data.splits import read_split_rows
from promptft.errors import ConfigError, DataError
from promptft.evaluation.counterfactual import (
    TERM_GROUPS,
    CounterfactualReport,
    TermGroup,
    counterfactual_test,
    counterfactuals,
    load_term_groups,
    positive_index,
)
from promptft.evaluation.equity_probe import EquityProbeReport, equity_probe
from promptft.evaluation.fairness import GroupFairnessReport, group_fairness
from promptft.evaluation.hatecheck import (
    HATEFUL,
    NON_HATEFUL,
    HateCheckReport,
    hatecheck_report,
    read_hatecheck,
)
from promptft.files import write_dir_atomically

FAIRNESS_DIR = "fairness"
RESULT_FILE = "fairness.json"
SUMMARY_FILE = "fairness.md"


@dataclass
class FairnessResult:
    model: str
    data: str | None = None
    group: GroupFairnessReport | None = None
    counterfactual: CounterfactualReport | None = None
    probe: EquityProbeReport | None = None
    hatecheck: HateCheckReport | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def flagged(self) -> list[str]:
        """The parts that found a problem."""
        parts = {"group": self.group, "counterfactual": self.counterfactual, "probe": self.probe}
        out = [name for name, part in parts.items() if part is not None and part.flagged]
        if self.hatecheck is not None and (self.hatecheck.group_fairness or {}).get("flagged"):
            out.append("hatecheck")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "data": self.data,
            "flagged": self.flagged,
            "group_fairness": self.group.to_dict() if self.group else None,
            "counterfactual": self.counterfactual.to_dict() if self.counterfactual else None,
            "equity_probe": self.probe.to_dict() if self.probe else None,
            "hatecheck": self.hatecheck.to_dict() if self.hatecheck else None,
            "notes": self.notes,
        }

    def render_markdown(self) -> str:
        lines = [f"# Fairness audit of {self.model}", ""]
        lines.append(
            f"Flagged: {', '.join(self.flagged) or 'nothing'}"
            + (f" (data: {self.data})" if self.data else "")
        )
        for part in (self.group, self.counterfactual, self.probe, self.hatecheck):
            if part is not None:
                lines += ["", part.render_markdown()]
        lines += [f"* {n}" for n in self.notes]
        return "\n".join(lines) + "\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FairnessResult:
        """A result read back from `to_dict()` (fairness.json), e.g. to render it again."""
        group = cf = probe = hate = None
        if data.get("group_fairness"):
            g = data["group_fairness"]
            group = GroupFairnessReport(g["positive_label"], g["per_group"], g["demographic_parity_difference"],
                                        g["equalized_odds_difference"], g["accuracy_difference"], g["threshold"])  # fmt: skip
        if data.get("counterfactual"):
            c = data["counterfactual"]
            cf = CounterfactualReport(
                c["n_texts"],
                c["n_texts_with_terms"],
                c["n_pairs"],
                c["flip_rate"],
                c["mean_abs_prob_change"],
                c["max_abs_prob_change"],
                c["per_term_group"],
                c["worst_examples"],
                c["positive_label"],
                c["thresholds"],
            )
        if data.get("equity_probe"):
            e = data["equity_probe"]
            probe = EquityProbeReport(e["positive_label"], e["n_sentences"], e["dimensions"], e["alpha"],
                                      e["min_gap"], e.get("notes", []))  # fmt: skip
        if data.get("hatecheck"):
            h = data["hatecheck"]
            hate = HateCheckReport(h["n"], h["accuracy"], h["per_functionality"], h["per_target"],
                                   h["group_fairness"], h["weakest_functionalities"])  # fmt: skip
        return cls(
            data.get("model", ""), data.get("data"), group, cf, probe, hate, list(data.get("notes", []))
        )

    def save(self, folder: str | Path) -> Path:
        """Write fairness.json and fairness.md into `folder` (replaced as a whole)."""
        folder = Path(folder)

        def build(tmp: Path) -> None:
            (tmp / RESULT_FILE).write_text(json.dumps(self.to_dict(), indent=2) + "\n")
            (tmp / SUMMARY_FILE).write_text(self.render_markdown())

        folder.parent.mkdir(parents=True, exist_ok=True)
        write_dir_atomically(folder, build)
        return folder


class TextClassifier:
    """Lets a classifier of one text field score plain strings (what the counterfactual test and the probe
    produce); a multi-field classifier gets the rewritten text in `field` and the others from `defaults`."""

    def __init__(self, clf, field_name: str = "text") -> None:
        self.clf = clf
        self.labels = list(clf.labels)
        self.field = field_name

    def predict_proba(self, texts: Sequence[str], batch_size: int = 32):
        return self.clf.predict_proba([Example({self.field: t}) for t in texts], batch_size)


def fairness_audit(
    run_dir: str | Path,
    data: str | Path | None = None,
    *,
    group_column: str | None = None,
    columns: Mapping[str, Any] | None = None,
    positive_label: str | None = None,
    counterfactual: bool = True,
    term_groups: Sequence[str] | None = None,
    terms_dir: str | Path | None = None,
    probe: bool = False,
    hatecheck: str | Path | None = None,
    hateful_label: str | None = None,
    batch_size: int = 32,
    device: str | None = None,
    classifier=None,
) -> FairnessResult:
    """Audit the classifier saved in `run_dir` (or `classifier`, any object with `labels` and
    `predict_proba(texts)`). Everything about the inputs is checked before the model loads."""
    from promptft.recipes.evaluate import load, prepare, require_file

    if data is None and not probe and hatecheck is None:
        raise ConfigError("nothing to audit: give --data (with --group-column and/or the counterfactual test), "
                          "--probe, or --hatecheck")  # fmt: skip
    if group_column is not None and data is None:
        raise ConfigError("--group-column names a column of --data: give --data too")
    rows = []
    spec = None
    if classifier is None:
        folder, saved, spec = prepare(run_dir, device, **dict(columns or {}))
        fields = saved.get("fields") or ["text"]
    else:
        folder, fields = Path(str(run_dir)), ["text"]
        spec = DataConfig.parse(dict(columns or {}))
    if len(fields) != 1 and (counterfactual or probe or hatecheck):
        raise ConfigError(
            f"the counterfactual test, probe and HateCheck score one text, but this classifier reads {fields}: "
            "use --no-counterfactual and only --group-column"
        )
    if data is not None:
        require_file(data)
        rows = read_split_rows(data, spec.reader_options())
        if not rows:
            raise DataError(f"{data} holds no rows: check the file and its label column")
        if group_column is not None and group_column not in rows[0].cells:
            raise DataError(
                f"{data} has no column {group_column!r} for --group-column: it has {list(rows[0].cells)}"
            )
    cases = read_hatecheck(hatecheck) if hatecheck is not None else None
    groups = load_term_groups(term_groups or TERM_GROUPS, terms_dir) if counterfactual else None
    clf = classifier if classifier is not None else load(folder, device)
    labels = [str(x) for x in clf.labels]
    if hatecheck is not None and (hateful_label or HATEFUL) not in labels:
        raise ConfigError(
            f"--hateful-label {hateful_label or HATEFUL!r} is not one of the classifier's labels {labels}"
        )
    if data is not None or probe:
        positive_index(labels, positive_label)  # fail before scoring
    scorer = clf if classifier is not None else TextClassifier(clf, fields[0])
    result = FairnessResult(model=str(run_dir), data=str(data) if data else None)
    if rows:
        texts = [" ".join(row.example.fields.values()) if len(fields) != 1 else row.example.fields[fields[0]]
                 for row in rows]  # fmt: skip
        if group_column is not None:
            probs = scorer.predict_proba(texts, batch_size=batch_size)
            predicted = [labels[i] for i in probs.argmax(axis=1)]
            gold = [row.example.label for row in rows]
            if any(g is None for g in gold):
                raise DataError(f"{data}: group fairness needs labelled rows: give --label-column")
            group_values = [str(row.cells[group_column]) for row in rows]
            pos = labels[positive_index(labels, positive_label)]
            result.group = group_fairness(gold, predicted, group_values, positive_label=pos)
        if counterfactual:
            result.counterfactual = counterfactual_test(
                scorer, texts, positive_label=positive_label, term_groups=groups, batch_size=batch_size
            )
    if probe:
        result.probe = equity_probe(scorer, positive_label=positive_label, batch_size=batch_size)
    if cases is not None:
        probs = scorer.predict_proba([c.text for c in cases], batch_size=batch_size)
        hateful = hateful_label or HATEFUL
        predicted = [HATEFUL if labels[i] == hateful else NON_HATEFUL for i in probs.argmax(axis=1)]
        result.hatecheck = hatecheck_report(cases, predicted)
    return result


def counterfactual_augment(
    examples: Sequence[Example], term_groups: Mapping[str, TermGroup] | None = None, field_name: str = "text"
) -> list[Example]:
    """Counterfactual data augmentation: `examples` plus, for each text with identity terms, its rewrites
    into every other group of each term group (same label)."""
    term_groups = dict(term_groups) if term_groups is not None else load_term_groups()
    examples = list(examples)
    texts = [ex.fields.get(field_name, "") for ex in examples]
    extra = []
    for record in counterfactuals(texts, term_groups):
        source = examples[record["row"]]
        extra.append(Example({**source.fields, field_name: record["counterfactual"]}, source.label))
    return examples + extra
