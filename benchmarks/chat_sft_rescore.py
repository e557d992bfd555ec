"""Rescore committed chat_sft generations (no model runs): the slot-value recall split into values in the
context and not, the reference turn's own recall (the ceiling of the substring match), and paired-bootstrap
intervals of each after-minus-before change. The turns are rebuilt from SGD test by id, and their annotated
values must equal the stored ones.

    PYTHONPATH=src python benchmarks/chat_sft_rescore.py \\
        --generations benchmarks/results/chat_sft_generations.jsonl --out benchmarks/results/chat_sft_rescored.json
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "sgd"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--generations", default="benchmarks/results/chat_sft_generations.jsonl")
    ap.add_argument("--results", default="benchmarks/results/chat_sft.json", help="For the seen services.")
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--out", default="benchmarks/results/chat_sft_rescored.json")
    args = ap.parse_args()

    from promptft.chat.data import read_sgd
    from promptft.chat.evaluate import TurnCase, paired_bootstrap, score_turns

    rows = [json.loads(line) for line in Path(args.generations).read_text().splitlines() if line.strip()]
    seen = set(json.loads(Path(args.results).read_text())["data"]["seen_services"])
    test = read_sgd(DATA / "test")
    by_id = {c.id: c for c in test}
    cases = []
    for row in rows:
        conv_id, index = row["id"].rsplit("#", 1)
        conv, i = by_id[conv_id], int(index)
        k = sum(m["role"] == "assistant" for m in conv.messages[:i])
        backend = [v for r in conv.meta["results"][: k + 1] for v in r]
        case = TurnCase(
            row["id"],
            conv.messages[:i],
            conv.messages[i]["content"],
            conv.meta["values"][k],
            conv.meta["services"][0],
            conv.meta["services"][0] in seen,
            {"backend_values": list(dict.fromkeys(backend))},
        )
        if case.values != row["values"] or case.seen != row["seen"] or case.reference != row["reference"]:
            raise SystemExit(
                f"{row['id']}: the stored turn differs from SGD test's; wrong --generations file?"
            )
        cases.append(case)
    before, after = [r["before"] for r in rows], [r["after"] for r in rows]
    out = {
        "what": f"the {len(cases)} generated turns of {args.generations} (before and after fine-tuning) rescored: "
        "slot-value recall for values in the earlier messages (in_context) and the others (not_in_context; "
        "values_not_in_context_in_results of them are verbatim in the service results the system saw), the "
        "reference turn scored as if generated (ceiling), and 95% paired-bootstrap intervals over turns",
        "before": score_turns(cases, before),
        "after": score_turns(cases, after),
        "reference": score_turns(cases, [c.reference for c in cases]),
        "change": paired_bootstrap(cases, before, after, resamples=args.bootstrap, seed=0),
        "command": "PYTHONPATH=src python " + " ".join(map(shlex.quote, sys.argv)),
    }
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    for group in ("all", "seen", "unseen"):
        b, a, c = out["before"][group], out["after"][group], out["change"][group]
        print(
            f"{group}: {b['turns']} turns, {b['values']} values ({b['values_in_context']} in context); recall "
            f"{b['slot_value_recall']:.3f} -> {a['slot_value_recall']:.3f} "
            f"[{c['slot_value_recall']['low']:+.3f}, {c['slot_value_recall']['high']:+.3f}], in context "
            f"{b['slot_value_recall_in_context']:.3f} -> {a['slot_value_recall_in_context']:.3f}, not "
            f"{b['slot_value_recall_not_in_context']:.3f} -> {a['slot_value_recall_not_in_context']:.3f}; ROUGE-L "
            f"{b['rouge_l']:.3f} -> {a['rouge_l']:.3f} [{c['rouge_l']['low']:+.3f}, {c['rouge_l']['high']:+.3f}]"
        )


if __name__ == "__main__":
    main()
