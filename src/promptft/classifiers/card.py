"""The model card: a README.md written next to a saved classifier's weights, for whoever receives the folder.

`save_pretrained` writes it from what the folder holds (`promptft_config.json`: base model, prompt, labels,
adapter, task; peft's `adapter_config.json`: the adapter's settings) plus what the classifier was told about
its training (`clf.note_for_card(...)`: the data, the command, dev and test metrics; the Trainer and the
`train` recipe fill these in). Those notes are kept in `promptft_config.json` under `"card"`, so the card can
be written again later with more in it:

    from promptft.classifiers.card import update_model_card
    update_model_card("runs/sst2/best", test={"accuracy": 0.84, "n": 872})

Fairness audits: any `fairness*.json` file in the saved folder or, for a run's `best/`, in the run folder
beside it, is summarised in the card's "Fairness" section (its numbers, one level deep). A fairness command
writes its JSON there and calls `update_model_card(run_dir / "best")`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

CARD_FILE = "README.md"
_CONFIG_FILE = "promptft_config.json"  # == saving.CONFIG_FILE (not imported: saving imports this module)

# peft adapter_config.json keys worth showing (the rest is peft bookkeeping)
_ADAPTER_KEYS = (
    "peft_type",
    "r",
    "lora_alpha",
    "lora_dropout",
    "use_dora",
    "target_modules",
    "layers_to_transform",
    "num_virtual_tokens",
    "encoder_hidden_size",
    "encoder_reparameterization_type",
    "feedforward_modules",
    "modules_to_save",
    "prompt_tuning_init",
)


def _version() -> str:
    from promptft.version import __version__

    return __version__


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _metrics_table(metrics: Mapping[str, Any]) -> list[str]:
    shown = {k: v for k, v in metrics.items() if not k.startswith("f1_")}
    lines = ["| metric | value |", "|---|---|"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in shown.items()]
    return lines


def _adapter_settings(folder: Path) -> dict[str, Any]:
    path = folder / "adapter" / "adapter_config.json"
    if not path.exists():
        return {}
    settings = json.loads(path.read_text())
    out = {k: settings[k] for k in _ADAPTER_KEYS if settings.get(k) is not None}
    modules = out.get("target_modules")
    if isinstance(modules, list):  # top_layers lists every module by its full name: show the kinds
        kinds = sorted({m.split(".")[-1] for m in modules})
        out["target_modules"] = (
            kinds if len(kinds) == len(modules) else f"{', '.join(kinds)} ({len(modules)} modules)"
        )
    return out


def _fairness_files(folder: Path) -> list[Path]:
    places = [folder]
    name = folder.name.removesuffix(".tmp")  # save_pretrained writes into <folder>.tmp first
    if name == "best":
        places.append(folder.parent)
    found: list[Path] = []
    for place in places:
        found += sorted(place.glob("fairness*.json"))
    return found


def _numbers(data: Any, prefix: str = "", depth: int = 0) -> list[tuple[str, float]]:
    if isinstance(data, bool):
        return []
    if isinstance(data, int | float):
        return [(prefix or "value", data)]
    if isinstance(data, Mapping) and depth < 2:
        out: list[tuple[str, float]] = []
        for key, value in data.items():
            out += _numbers(value, f"{prefix}.{key}" if prefix else str(key), depth + 1)
        return out
    return []


def _fairness_section(folder: Path) -> list[str]:
    files = _fairness_files(folder)
    if not files:
        return [
            "No fairness audit was found with this model (no `fairness*.json` beside it). A classifier can "
            "treat groups of people differently; audit it on data that names the groups you care about "
            "before you deploy it."
        ]
    lines: list[str] = []
    for path in files:
        try:
            numbers = _numbers(json.loads(path.read_text()))
        except (OSError, ValueError):
            lines.append(f"* `{path.name}`: unreadable")
            continue
        lines.append(f"From `{path.name}`:")
        lines.append("")
        lines += ["| measure | value |", "|---|---|"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in numbers[:20]]
        if len(numbers) > 20:
            lines.append(f"| ... | {len(numbers) - 20} more in the file |")
        lines.append("")
    return lines


def render_model_card(folder: str | Path) -> str:
    """The card's markdown for a saved classifier folder (its config must be written already)."""
    folder = Path(folder)
    config = json.loads((folder / _CONFIG_FILE).read_text())
    notes: dict[str, Any] = config.get("card") or {}
    base = config.get("base_model", "?")
    kind = config.get("type", "prompt")
    adapter = config.get("adapter", "?")
    objective = config.get("objective") or {}
    task = objective.get("name", "single_label")
    labels = config.get("labels") or []
    version = config.get("promptft_version") or _version()
    what = {"prompt": "prompt-based", "yes_no": "yes/no-question", "head": "classification-head"}.get(
        kind, kind
    )

    lines = [
        "---",
        "library_name: promptft",
        f"base_model: {json.dumps(str(base))}",
        "tags: [promptft, text-classification, few-shot]",
        "---",
        "",
        f"# {'An' if what[0] in 'aeiou' else 'A'} {what} {task.replace('_', '-')} classifier on {base}",
        "",
        f"Saved by promptft {version} (saved-model format {config.get('format_version')}). Load it with:",
        "",
        "```python",
        "from promptft import load_classifier",
        "",
        'clf = load_classifier("path/to/this/folder")',
        f"print(clf.predict([{json.dumps('an example text')}]))",
        "```",
        "",
        "## Model",
        "",
        "| | |",
        "|---|---|",
        f"| base model | `{base}` |",
        *([f"| backbone kind | {config['kind']} |"] if config.get("kind") else []),
        f"| classifier | {kind} |",
        *([f"| adapter (`finetune=`) | `{adapter}` |"] if kind != "ensemble" else []),
        f"| task | {task} |",
        f"| labels | {', '.join(f'`{label}`' for label in labels)} |",
    ]
    params = notes.get("parameters")
    if params and (params[0] or adapter == "none"):  # a reloaded model is frozen: its count says nothing
        trainable, total = params
        lines.append(f"| trainable parameters | {trainable:,} of {total:,} |")
    if config.get("max_length"):
        lines.append(f"| max length (tokens) | {config['max_length']} |")
    lines.append("")

    if kind == "ensemble":  # members, weights and each one's dev score (promptft ensemble notes them)
        scores = notes.get("ensemble") or {}
        how = {"logits": "label log-probabilities (PET)", "probabilities": "label probabilities"}
        mean_of = how.get(config.get("combine", "logits"), "scores")
        lines += ["## Members", "", f"Predicts the weighted mean of its members' {mean_of}.", ""]
        lines += ["| member (`members/<name>/`) | weight | dev accuracy |", "|---|---|---|"]
        for name, weight in zip(config.get("members") or [], config.get("weights") or [], strict=False):
            dev_acc = ((scores.get(name) or {}).get("dev") or {}).get("accuracy")
            lines.append(f"| `{name}` | {weight:.3f} | {'-' if dev_acc is None else f'{dev_acc:.4f}'} |")
        lines.append("")
    if "template" in config:
        words = (config.get("verbalizer") or {}).get("label_words") or {}
        lines += ["## Prompt", "", "Template (`{mask}` is where the label word is scored):", "", "```text"]
        lines += [config["template"], "```", ""]
        if words:
            lines += ["| label | label word(s) |", "|---|---|"]
            lines += [f"| `{label}` | {', '.join(repr(w) for w in ws)} |" for label, ws in words.items()]
            lines.append("")
    settings = _adapter_settings(folder)
    if settings or config.get("lora"):
        lines += ["## Adapter settings", "", "```json", json.dumps(settings or config.get("lora"), indent=2)]
        lines += ["```", ""]

    lines += ["## Training", ""]
    data = notes.get("data") or {}
    training = notes.get("training") or {}
    if not data and not training:
        lines += ["Not trained through promptft's trainer (zero-shot, or saved before training).", ""]
    for split in ("train", "dev", "test"):
        source = data.get(split)
        size = training.get(f"n_{split}") if split != "test" else notes.get("test", {}).get("n")
        if source or size:
            lines.append(
                f"* {split}: {f'`{source}`' if source else 'in-memory examples'}"
                + (f", {size} examples" if size else "")
            )
    if training.get("label_counts"):
        counts = ", ".join(f"{k}: {v}" for k, v in training["label_counts"].items())
        lines.append(f"* train examples per label: {counts}")
    for key, name in (
        ("steps", "steps"),
        ("best_step", "step kept (best on dev)"),
        ("learning_rate", "learning rate"),
        ("batch_size", "batch size"),
        ("seed", "seed"),
    ):
        if training.get(key) is not None:
            lines.append(f"* {name}: {training[key]}")
    refit = training.get("refit")
    if refit:
        lines.append(
            f"* refit: trained again from the start on train + dev ({refit['n_examples']} examples) for the "
            f"{refit['steps']} steps chosen on dev; this is the saved model, so the dev scores below are the "
            "selection run's"
        )
    elif training.get("refit_skipped"):
        lines.append(f"* refit skipped: {training['refit_skipped']}")
    if notes.get("job"):
        lines.append(f"* the whole job (to repeat or resume it): `{notes['job']}`")
    if notes.get("command"):
        lines += ["", "Command:", "", "```bash", notes["command"], "```"]
    lines.append("")

    dev, test = notes.get("dev"), notes.get("test")
    if dev or test:
        lines += ["## Results", ""]
        if dev:
            lines += [
                "Dev (the split the kept step was chosen on; optimistic):"
                if kind != "ensemble"
                else "Dev (the file the members were weighted on; each member's step was chosen on dev too):",
                "",
                *_metrics_table(dev),
                "",
            ]
        if test:
            lines += ["Test:", "", *_metrics_table(test), ""]

    n_train = (training.get("refit") or {}).get("n_examples") or training.get("n_train")
    lines += ["## Known limits", ""]
    if n_train is not None:
        lines.append(
            f"* **Few-shot**: trained on {n_train} examples; expect its accuracy to vary by several points "
            "with another sample of the same size, and check it on your own data before relying on it."
        )
    lines.append(
        "* **Language and domain**: only as good as the base model in the language and domain of its "
        "training data (the benchmarks promptft reports are English); texts far from them may be misclassified."
    )
    if config.get("kind") == "causal" and "template" in config:
        lines.append("* **Causal LM**: only the text before `{mask}` in the template is read.")
    if "gemma" in str(base).lower():
        lines.append(
            "* **License**: Gemma's Terms of Use apply to this model derivative "
            "(ai.google.dev/gemma/terms): pass them on with it."
        )
    else:
        lines.append(
            "* **License**: the base model's own license applies to this model; check it before sharing."
        )
    lines += ["", "## Fairness", "", *_fairness_section(folder), ""]
    return "\n".join(lines).rstrip() + "\n"


def write_model_card(folder: str | Path) -> Path:
    """Write (or rewrite) `<folder>/README.md` from the folder's config; returns its path."""
    folder = Path(folder)
    path = folder / CARD_FILE
    _replace(path, render_model_card(folder))
    return path


def update_model_card(folder: str | Path, **notes: Any) -> Path:
    """Add notes (e.g. `test={...}`, `command="..."`) to a saved classifier's card and write it again."""
    folder = Path(folder)
    config_path = folder / _CONFIG_FILE
    config = json.loads(config_path.read_text())
    config["card"] = {**(config.get("card") or {}), **_jsonable(notes)}
    _replace(config_path, json.dumps(config, indent=2))
    return write_model_card(folder)


def _jsonable(notes: Mapping[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(dict(notes), default=lambda v: v.item() if hasattr(v, "item") else str(v)))


def _replace(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
