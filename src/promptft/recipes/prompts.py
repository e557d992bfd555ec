"""The prompt-crafting recipes: evaluate candidate prompts, search label words, search templates.

    from promptft.config import DataConfig
    from promptft.recipes.prompts import evaluate_prompt_files, search_templates_files, search_words_files

    data = DataConfig(label_map={"0": "negative", "1": "positive"})
    ranking = evaluate_prompt_files("dev.tsv", ["Review: {text}\\nSentiment: {mask}", "{text} It was {mask}."],
                                    [{"negative": "terrible", "positive": "great"}], data=data)
    words = search_words_files("train.tsv", "dev.tsv", "{text} It was {mask}.", "words.json", data=data)
    found = search_templates_files("train.tsv", "dev.tsv", words.label_words, "runs/templates", data=data)

Each reads its files with one column spec (a `DataConfig`: fields, label column, label map, format) and
calls `promptft.search`; the searches write what they found (a label-words JSON, `template_search.json`).
`promptft prompts eval|search-words|search-templates` are these functions behind flags.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from promptft.config import DataConfig
from promptft.data import Example
from promptft.data.splits import read_split
from promptft.errors import ConfigError
from promptft.prompts.template import unescape_template
from promptft.recipes.run_dir import check_new_file
from promptft.search.label_words import LabelWordSearch, search_label_words
from promptft.search.prompt_eval import PromptEvaluation, evaluate_prompts, pair_candidates
from promptft.search.templates import SEARCH_FILE, TemplateSearch, search_templates


def read_labelled(path: str | Path, data: DataConfig | None) -> list[Example]:
    """One labelled split, read with the column spec of `data` (default: the usual columns)."""
    spec = (data or DataConfig()).reader_options()
    return read_split(path, spec)


def evaluate_prompt_files(
    data_file: str | Path,
    templates: Sequence[str],
    label_words: Sequence[Mapping[str, str | Sequence[str]]],
    *,
    data: DataConfig | None = None,
    train_file: str | Path | None = None,
    model: str = "smollm2-135m",
    **options: Any,
) -> PromptEvaluation:
    """Score every (template, label words) pair on `data_file` (see `pair_candidates` for how templates
    and label-word sets pair up); `options` go to `promptft.search.prompt_eval.evaluate_prompts`
    (finetune_steps, calibrate, kind, device, max_length, batch_size, learning_rate, seed, on_progress)."""
    candidates = pair_candidates([unescape_template(t) for t in templates], list(label_words))
    examples = read_labelled(data_file, data)
    train = read_labelled(train_file, data) if train_file else None
    if options.get("finetune_steps") and train is None:
        raise ConfigError("--finetune-steps needs training examples: pass --train FILE")
    return evaluate_prompts(model, candidates, examples, train=train, **options)


def search_words_files(
    train_file: str | Path,
    dev_file: str | Path,
    template: str,
    output: str | Path,
    *,
    data: DataConfig | None = None,
    model: str = "smollm2-135m",
    overwrite: bool = False,
    **options: Any,
) -> LabelWordSearch:
    """LM-BFF label-word search for `template` (`promptft.search.label_words.search_label_words` options:
    k, top_n, rank, screen, finetune_top, finetune_steps, ...); writes the label-words JSON to `output`.
    The labels come from the label map when there is one (in its order), else from the data. An existing
    `output` is kept (an error before the search) unless `overwrite`."""
    output = Path(output)
    if output.is_dir():
        raise ConfigError(f"--output {output} is a folder: give a file name, e.g. {output}/label_words.json")
    check_new_file(output, "the label-words file", overwrite)
    train = read_labelled(train_file, data)
    dev = read_labelled(dev_file, data)
    labels = list(dict.fromkeys(data.label_map.values())) if data and data.label_map else None
    result = search_label_words(model, unescape_template(template), train, dev, labels=labels, **options)
    result.write(output)
    return result


def search_templates_files(
    train_file: str | Path,
    dev_file: str | Path,
    label_words: Mapping[str, str | Sequence[str]],
    output: str | Path,
    *,
    data: DataConfig | None = None,
    model: str = "smollm2-135m",
    templates: Sequence[str] = (),
    overwrite: bool = False,
    **options: Any,
) -> TemplateSearch:
    """Template search for fixed `label_words` (`promptft.search.templates.search_templates` options:
    task_type, use_library, generate, finetune_top, ...); writes `<output>/template_search.json`, keeping an
    earlier search's file (an error before the search) unless `overwrite`."""
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise ConfigError(f"--output {output} is a file: give a folder for template_search.json")
    check_new_file(output / SEARCH_FILE, "the template search", overwrite)
    train = read_labelled(train_file, data)
    dev = read_labelled(dev_file, data)
    result = search_templates(
        model, train, dev, label_words, templates=[unescape_template(t) for t in templates], **options
    )
    result.write(output)
    return result
