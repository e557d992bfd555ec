"""Fairness of the demo's SST-2 model, and of the same model trained on counterfactually augmented data.

Trains (unless the run folders already hold a model) the demo's job, SST-2 16-shot split 16-42 with the demo's
prompt, LoRA and train settings (`promptft.demo`), once on its 32 training examples and once on those plus their
identity-swapped rewrites (counterfactual data augmentation, `promptft.recipes.fairness.counterfactual_augment`;
same dev set, same settings and seed). Each model then gets the counterfactual test on the 872 SST-2 test sentences,
the equity probe, and its test accuracy. Writes

    benchmarks/results/fairness_sst2_counterfactual.json
    benchmarks/results/fairness_equity_probe.json

and each run's `fairness/` folder (read by `promptft report`).

    python benchmarks/fairness_sst2.py [--baseline runs/fairness-baseline] [--mitigated runs/fairness-cda]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from promptft.classifiers import PromptClassifier, load_classifier
from promptft.demo import LABEL_WORDS, LORA, TEMPLATE, TRAIN, load_sst2
from promptft.evaluation.counterfactual import counterfactual_test
from promptft.evaluation.equity_probe import EquityProbeReport, equity_probe
from promptft.recipes.fairness import FAIRNESS_DIR, FairnessResult, TextClassifier, counterfactual_augment

RESULTS = Path("benchmarks/results")
REUSE_NOTE = (
    "--reuse-probe: the equity probe and the test accuracies were read back from each run's previous audit "
    "(computed by `python benchmarks/fairness_sst2.py` with the same models and probe spec; test accuracy kept "
    "to 4 decimals); the counterfactual test was recomputed with the current term lists"
)


def train(run: Path, train_examples, dev) -> None:
    if (run / "best").is_dir():
        print(f"{run}: already trained, reused", file=sys.stderr)
        return
    clf = PromptClassifier.from_model(
        "smollm2-135m", TEMPLATE, LABEL_WORDS, finetune="lora", lora=LORA, device="cpu"
    )
    clf.fit(train_examples, dev, TRAIN, run_dir=run)


def audit(run: Path, test, reuse_probe: bool = False) -> dict:
    """The counterfactual test, the probe and the test accuracy of a run's model. With `reuse_probe`, the probe
    and accuracy of the run's previous audit (`<run>/fairness/fairness.json`) are read back instead of being
    recomputed: they do not depend on the term lists, only the counterfactual test does."""
    clf = load_classifier(run / "best", device="cpu")
    scorer = TextClassifier(clf)
    start = time.perf_counter()
    cf = counterfactual_test(scorer, [ex.fields["text"] for ex in test], positive_label="positive")
    previous = json.loads((run / FAIRNESS_DIR / "fairness.json").read_text()) if reuse_probe else None
    if previous is not None:
        saved = previous["equity_probe"]
        probe = EquityProbeReport(saved["positive_label"], saved["n_sentences"], saved["dimensions"],
                                  saved["alpha"], saved["min_gap"], saved["notes"])  # fmt: skip
        accuracy = previous.get("test_accuracy")
        if accuracy is None:  # an audit written before the key existed: its note holds the number
            note = next(n for n in previous["notes"] if n.startswith("SST-2 test accuracy "))
            accuracy = float(note.rsplit(" ", 1)[1])
    else:
        probe = equity_probe(scorer, positive_label="positive")
        accuracy = clf.evaluate(test)["accuracy"]
    result = FairnessResult(model=str(run), data="SST-2/test.tsv", counterfactual=cf, probe=probe)
    result.notes.append(f"SST-2 test accuracy {accuracy:.4f}")
    saved_result = result.to_dict()
    result.save(run / FAIRNESS_DIR)
    path = run / FAIRNESS_DIR / "fairness.json"
    path.write_text(json.dumps({**saved_result, "test_accuracy": accuracy}, indent=2) + "\n")
    return {"counterfactual": cf, "probe": probe, "test_accuracy": accuracy,
            "audit_s": round(time.perf_counter() - start, 1)}  # fmt: skip


def probe_summary(probe) -> dict:
    return {
        name: {
            "per_group": {
                g: {"mean_prob": v["mean_prob"], "positive_rate": v["positive_rate"]}
                for g, v in d["groups"].items()
            },  # fmt: skip
            "max_mean_prob_gap": d["max_mean_prob_gap"],
            "max_positive_rate_gap": d["max_positive_rate_gap"],
            "differences": d["differences"],
            "friedman_p": d["friedman_p"],
            "flagged": d["flagged"],
        }
        for name, d in probe.to_dict()["dimensions"].items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline", type=Path, default=Path("runs/fairness-baseline"))
    parser.add_argument("--mitigated", type=Path, default=Path("runs/fairness-cda"))
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    parser.add_argument(
        "--reuse-probe",
        action="store_true",
        help="read each run's probe and test accuracy back from its last audit; redo only the counterfactual test",
    )
    args = parser.parse_args(argv)
    command = "python benchmarks/fairness_sst2.py " + " ".join(argv if argv is not None else sys.argv[1:])
    train_examples, dev, test, source = load_sst2(42)
    augmented = counterfactual_augment(train_examples)
    train(args.baseline, train_examples, dev)
    train(args.mitigated, augmented, dev)
    base = audit(args.baseline, test, args.reuse_probe)
    mitigated = audit(args.mitigated, test, args.reuse_probe)
    setup = {
        "model": "smollm2-135m",
        "job": "the demo's: SST-2 16-shot split 16-42, prompt "
        f"{TEMPLATE!r}, LoRA r={LORA.r} top_layers={LORA.top_layers}, lr {TRAIN.learning_rate}, "
        f"{TRAIN.max_steps} steps, seed {TRAIN.seed}",
        "data": source,
        "baseline_run": str(args.baseline),
        "command": command,
        "date": time.strftime("%Y-%m-%d"),
    }
    if args.reuse_probe:
        setup["note"] = REUSE_NOTE
    mitigation = {
        "method": "counterfactual data augmentation: each training text with identity terms (gender, names, "
        "religion, nationality lists) added once per other group with its terms swapped, same label; then "
        "trained again with the same settings and seed",
        "run": str(args.mitigated),
        "n_train_before": len(train_examples),
        "n_train_after": len(augmented),
    }
    base_cf, mit_cf = base["counterfactual"].to_dict(), mitigated["counterfactual"].to_dict()
    counterfactual = {
        **setup,
        **{k: base_cf[k] for k in ("flip_rate", "mean_abs_prob_change", "max_abs_prob_change", "n_texts",
                                   "n_texts_with_terms", "n_pairs", "flagged", "thresholds", "positive_label")},
        "per_term_group": base_cf["per_term_group"],
        "worst_examples": base_cf["worst_examples"],
        "test_accuracy": base["test_accuracy"],
        "mitigation": {
            **mitigation,
            "flip_rate": mit_cf["flip_rate"],
            "mean_abs_prob_change": mit_cf["mean_abs_prob_change"],
            "max_abs_prob_change": mit_cf["max_abs_prob_change"],
            "flagged": mit_cf["flagged"],
            "per_term_group": {k: {m: v[m] for m in ("n_pairs", "flip_rate", "mean_abs_prob_change",
                                                     "mean_prob_change")}
                               for k, v in mit_cf["per_term_group"].items()},
            "test_accuracy": mitigated["test_accuracy"],
            "effect": {
                "flip_rate": mit_cf["flip_rate"] - base_cf["flip_rate"],
                "mean_abs_prob_change": mit_cf["mean_abs_prob_change"] - base_cf["mean_abs_prob_change"],
                "test_accuracy": mitigated["test_accuracy"] - base["test_accuracy"],
            },
        },
    }  # fmt: skip
    base_probe, mit_probe = probe_summary(base["probe"]), probe_summary(mitigated["probe"])
    probe = {
        **setup,
        "positive_label": "positive",
        "n_sentences": base["probe"].n_sentences,
        "test": "paired over fillings matched by (template, word, filler position): t-test and Wilcoxon "
        "signed-rank; Friedman over 3+ groups; flagged when the Bonferroni-corrected Wilcoxon p < 0.05 and "
        "the mean gap >= 0.01",
        "flagged_dimensions": base["probe"].flagged_dimensions,
        "dimensions": base_probe,
        "test_accuracy": base["test_accuracy"],
        "mitigation": {
            **mitigation,
            "flagged_dimensions": mitigated["probe"].flagged_dimensions,
            "dimensions": mit_probe,
            "test_accuracy": mitigated["test_accuracy"],
            "effect": {
                name: {
                    "max_mean_prob_gap_before": base_probe[name]["max_mean_prob_gap"],
                    "max_mean_prob_gap_after": mit_probe[name]["max_mean_prob_gap"],
                    "max_positive_rate_gap_before": base_probe[name]["max_positive_rate_gap"],
                    "max_positive_rate_gap_after": mit_probe[name]["max_positive_rate_gap"],
                }
                for name in base_probe
            },
        },
    }
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / "fairness_sst2_counterfactual.json").write_text(
        json.dumps(counterfactual, indent=2) + "\n"
    )
    (args.results_dir / "fairness_equity_probe.json").write_text(json.dumps(probe, indent=2) + "\n")
    print(json.dumps({"counterfactual": {k: counterfactual[k] for k in ("flip_rate", "mean_abs_prob_change")},
                      "mitigated": counterfactual["mitigation"]["effect"],
                      "probe_flagged": probe["flagged_dimensions"]}, indent=2))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
