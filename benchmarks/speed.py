"""Speed of promptft vs the plain transformers (+ peft) way, measured in the same run.

    python benchmarks/speed.py predict   # -> benchmarks/results/predict_speed.json
    python benchmarks/speed.py train     # -> benchmarks/results/train_speed.json
    python benchmarks/speed.py multi-token --n 400   # -> benchmarks/results/multi_token_words.json

predict: `PromptClassifier.predict_proba` on SST-2 test vs `AutoModelForCausalLM` full logits over
fixed-order batches (the label word's log-prob read at each row's last real token).
train: seconds per LoRA step (batch 8, SST-2 16-shot) vs a plain transformers + peft loop whose loss is
the LM loss from the full-vocabulary logits at the label-word position (same LoRA config, same data).
multi-token: label words of several tokens (AG News' label names, "Sci/Tech"), scored with the prompt's
KV cache shared vs promptft's previous way (the prompt run again with each word's first tokens), same run:
`predict_proba` on AG News test and LoRA training steps on an 8-shot split, with equal scores checked.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from promptft import LoraSettings, PromptClassifier
from promptft.adapters.lora import linear_names as _linear_names
from promptft.data import read_examples
from promptft.demo import LABEL_MAP, TEMPLATE  # the demo's prompt
from promptft.demo import LABEL_WORDS as WORDS
from promptft.models.registry import resolve_model
from promptft.settings import data_dir
from promptft.training import batch_schedule

RESULTS = Path(__file__).resolve().parent / "results"


def sst2(split: str):
    root = data_dir()
    if root is None:
        sys.exit("no data: set PROMPTFT_DATA to the shared data folder")
    path = {"train": "SST-2/k-shot/16-42/train.tsv", "test": "SST-2/test.tsv"}[split]
    return read_examples(root / path, label_map=LABEL_MAP)


def prompt_text(clf, example) -> str:
    """The prompt as plain text up to the slot, as a user without promptft would write it."""
    return clf.template.render(example.fields, slot_text="").rstrip(" ")


def machine() -> dict:
    return {
        "cpu": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def baseline_predict(model, tok, texts, word_ids, batch_size):
    """The plain way: tokenize in the given order, full logits, read the last real token."""
    out = []
    with torch.inference_mode():
        for i in range(0, len(texts), batch_size):
            enc = tok(texts[i : i + batch_size], return_tensors="pt", padding=True)
            logits = model(**enc).logits  # [batch, seq, vocab]
            last = enc["attention_mask"].sum(1) - 1
            logprobs = torch.log_softmax(logits[torch.arange(len(last)), last], -1)
            out.append(logprobs[:, word_ids].argmax(-1))
    return torch.cat(out)


def run_predict(args) -> dict:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    test = sst2("test")[: args.n] if args.n else sst2("test")
    clf = PromptClassifier.from_model(args.model, TEMPLATE, WORDS, finetune="none", device="cpu")
    path = resolve_model(args.model)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(path)
    tok.padding_side = "right"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    texts = [prompt_text(clf, ex) for ex in test]
    word_ids = [ids[0] for ids in clf.words.word_ids]

    clf.predict_proba(test[:32])  # warm-up both paths
    baseline_predict(model, tok, texts[:32], word_ids, args.batch_size)
    ours, base = [], []
    for _ in range(args.repeats):  # interleaved, so drift in machine load hits both alike
        t = time.perf_counter()
        probs = clf.predict_proba(test, batch_size=args.batch_size)
        ours.append(time.perf_counter() - t)
        t = time.perf_counter()
        base_pred = baseline_predict(model, tok, texts, word_ids, args.batch_size)
        base.append(time.perf_counter() - t)
    agree = float((torch.tensor(probs.argmax(1)) == base_pred).float().mean())
    ours_eps = len(test) / statistics.median(ours)
    base_eps = len(test) / statistics.median(base)
    return {
        "promptft_examples_per_s": round(ours_eps, 2),
        "baseline_examples_per_s": round(base_eps, 2),
        "ratio": round(ours_eps / base_eps, 3),
        "n_examples": len(test),
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "prediction_agreement": agree,
        "model": args.model,
        "machine": machine(),
        "baseline": "AutoModelForCausalLM full logits, fixed-order batches, right padding, inference_mode",
    }


AG_TEMPLATE = (
    "{text} Topic: {mask}"  # what `train --auto` chose for AG News (results/auto/agnews_label_names.json)
)
AG_WORDS = {name: name for name in ("Business", "Sci/Tech", "Sports", "World")}


def run_multi_token(args) -> dict:
    root = data_dir()
    if root is None:
        sys.exit("no data: set PROMPTFT_DATA to the shared data folder")
    spec = {"fields": {"text": 0}, "label": 1, "header": False}
    test = read_examples(root / "agnews/test.tsv", **spec)[: args.n or None]
    train = read_examples(root / "agnews/dev.tsv", **spec)[:64]  # a sample of AG News train
    clf = PromptClassifier.from_model(
        args.model, AG_TEMPLATE, AG_WORDS, finetune=LoraSettings(r=8), device="cpu"
    )
    module = clf.module
    tokens = {w: len(ids) for w, ids in zip(AG_WORDS, clf.words.word_ids, strict=True)}
    encoded = clf.encode(train)
    targets = torch.tensor([clf.labels.index(ex.label) for ex in train])
    optimizer = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=1e-4)

    def predict() -> tuple[float, torch.Tensor]:
        t = time.perf_counter()
        probs = clf.predict_proba(test, batch_size=args.batch_size)
        return time.perf_counter() - t, torch.tensor(probs)

    def train_steps() -> float:
        module.train()
        t = time.perf_counter()
        for i in range(args.steps):
            batch = [(i * 8 + j) % len(encoded) for j in range(8)]
            loss = torch.nn.functional.cross_entropy(module([encoded[b] for b in batch]), targets[batch])
            loss.backward()
            optimizer.zero_grad()  # timing only: the weights stay as they are, so both ways see the same model
        module.eval()
        return (time.perf_counter() - t) / args.steps

    times: dict[str, dict[str, list[float]]] = {
        "shared": {"predict": [], "train": []},
        "whole": {"predict": [], "train": []},
    }
    probs = {}
    for share in (True, False):  # warm-up
        module.share_prefix = share
        clf.predict_proba(test[:32])
    for _ in range(args.repeats):  # interleaved, so drift in machine load hits both alike
        for share, name in ((True, "shared"), (False, "whole")):
            module.share_prefix = share
            seconds, probs[name] = predict()
            times[name]["predict"].append(seconds)
            times[name]["train"].append(train_steps())
    med = {k: {m: statistics.median(v) for m, v in d.items()} for k, d in times.items()}
    return {
        "label_word_tokens": tokens,
        "template": AG_TEMPLATE,
        "shared_examples_per_s": round(len(test) / med["shared"]["predict"], 2),
        "whole_examples_per_s": round(len(test) / med["whole"]["predict"], 2),
        "predict_ratio": round(med["whole"]["predict"] / med["shared"]["predict"], 3),
        "shared_s_per_train_step": round(med["shared"]["train"], 3),
        "whole_s_per_train_step": round(med["whole"]["train"], 3),
        "train_ratio": round(med["whole"]["train"] / med["shared"]["train"], 3),
        "max_abs_prob_difference": float((probs["shared"] - probs["whole"]).abs().max()),
        "prediction_agreement": float((probs["shared"].argmax(1) == probs["whole"].argmax(1)).float().mean()),
        "n_examples": len(test),
        "batch_size": args.batch_size,
        "train_batch_size": 8,
        "train_steps": args.steps,
        "repeats": args.repeats,
        "model": args.model,
        "machine": machine(),
        "baseline": "promptft before the shared cache: each multi-token word's prompt run again whole "
        "(PromptScorer.share_prefix = False), in the same run; ratios are baseline seconds / shared seconds",
    }


def run_train(args) -> dict:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    train = sst2("train")
    lora = LoraSettings(r=8, alpha=16, target_modules="all-linear", top_layers=args.top_layers or None)
    # promptft: the trainer's own step on the classifier
    torch.manual_seed(0)
    clf = PromptClassifier.from_model(args.model, TEMPLATE, WORDS, finetune="lora", lora=lora, device="cpu")
    enc = clf.encode(train)
    y = torch.tensor(clf.label_index(train))
    params = [p for p in clf.module.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    schedule = batch_schedule(
        [len(e.input_ids) for e in enc], 8, args.steps + args.warmup, seed=0, group_by_length=True
    )
    clf.module.train()
    clf.enable_training_cache()  # as the Trainer does; cache filling is counted in the measured steps

    def our_step(batch):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(clf.label_logits([enc[i] for i in batch]), y[batch])
        loss.backward()
        opt.step()

    # plain transformers + peft: LM loss on the label word, from the full-vocabulary logits
    path = resolve_model(args.model)
    tok = AutoTokenizer.from_pretrained(path)
    tok.padding_side = "right"
    torch.manual_seed(0)
    plain_model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    if args.top_layers:  # the same adapters as promptft's: the top N layers' linear modules
        n = plain_model.config.num_hidden_layers
        peft_config = LoraConfig(
            r=8,
            lora_alpha=16,
            target_modules=_linear_names(plain_model),
            layers_to_transform=list(range(n - args.top_layers, n)),
            layers_pattern="layers",
        )
    else:
        peft_config = LoraConfig(r=8, lora_alpha=16, target_modules="all-linear")
    base = get_peft_model(plain_model, peft_config)
    base.train()
    base_opt = torch.optim.AdamW([p for p in base.parameters() if p.requires_grad], lr=1e-4)
    texts = [prompt_text(clf, ex) + " " + WORDS[ex.label] for ex in train]
    plain_schedule = batch_schedule(
        [0] * len(train), 8, args.steps + args.warmup, seed=0, group_by_length=False
    )

    def base_step(batch):
        base_opt.zero_grad()
        b = tok([texts[i] for i in batch], return_tensors="pt", padding=True)
        labels = torch.full_like(b["input_ids"], -100)
        last = b["attention_mask"].sum(1) - 1
        labels[torch.arange(len(batch)), last] = b["input_ids"][torch.arange(len(batch)), last]
        loss = base(**b, labels=labels).loss
        loss.backward()
        base_opt.step()

    ours, plain = [], []
    for s in range(args.steps + args.warmup):  # interleaved steps
        t = time.perf_counter()
        our_step(schedule[s])
        d_ours = time.perf_counter() - t
        t = time.perf_counter()
        base_step(plain_schedule[s])
        d_base = time.perf_counter() - t
        if s == 0:
            first_ours = d_ours
        if s >= args.warmup:
            ours.append(d_ours)
            plain.append(d_base)
        print(f"step {s}: promptft {d_ours:.3f}s  baseline {d_base:.3f}s", file=sys.stderr)
    # Means over whole epochs (steps a multiple of 32/8): both sides see every example equally often.
    ours_s, base_s = statistics.mean(ours), statistics.mean(plain)
    return {
        "promptft_s_per_step": round(ours_s, 4),
        "baseline_s_per_step": round(base_s, 4),
        "ratio": round(base_s / ours_s, 3),
        "steps_measured": args.steps,
        "warmup_steps": args.warmup,
        "promptft_first_step_s": round(first_ours, 3),
        "note": "promptft's first step includes filling the frozen-layer cache (once per run)"
        if args.top_layers
        else "LoRA on every layer: nothing is frozen below the adapters, so no cache",
        "batch_size": 8,
        "lora": lora.to_dict(),
        "model": args.model,
        "machine": machine(),
        "baseline": "transformers + peft, LM loss from full-vocabulary logits at the label position, random batches",
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("which", choices=["predict", "train", "multi-token"])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--n", type=int, default=0, help="limit test examples (0 = all 872)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--top-layers", type=int, default=0, help="LoRA on the top N layers (0 = all layers)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    run = {"predict": run_predict, "train": run_train, "multi-token": run_multi_token}[args.which]
    result = run(args)
    result["command"] = "python " + " ".join(["benchmarks/speed.py", *sys.argv[1:]])
    result["date"] = time.strftime("%Y-%m-%d")
    default = {"multi-token": "multi_token_words.json"}.get(args.which, f"{args.which}_speed.json")
    out = args.out or RESULTS / default
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
