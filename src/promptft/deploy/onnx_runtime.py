"""Run an exported ONNX classifier with onnxruntime: `OnnxClassifier` has the API of every promptft
classifier (predict, predict_proba, evaluate, labels, objective), so predict and serve take either.

An ONNX folder (written by `promptft.deploy.onnx_export.export_onnx`) holds `model.onnx`, `promptft_onnx.json`
(the prompt, label words, labels, objective, input layout) and `tokenizer/`: it runs without the original
run folder or base model.

A prompt graph scores a fixed number of rows and positions per example, fixed by the label words
(`ScoringPlan`): a single-token label word needs only the prompt itself; a k-token word adds a row for a
causal LM (the prompt followed by the word's first k-1 tokens), a row with k masks for a masked LM, a decoder
row for seq2seq. The plan is the same for every example, so the graph's gathers are constants and only the
batch size and sequence length vary.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from promptft.classifiers.base import BaseClassifier
from promptft.classifiers.head import EncodedInput
from promptft.data import Example
from promptft.data.inputs import as_examples
from promptft.errors import DataError, ModelError
from promptft.objectives import objective_from_dict
from promptft.prompts.encoding import EncodedPrompt

ONNX_CONFIG = "promptft_onnx.json"
ONNX_MODEL = "model.onnx"
TOKENIZER_DIR = "tokenizer"
ONNX_FORMAT_VERSION = 1


@dataclass
class ScoringPlan:
    """Which rows and positions one example needs, and which token log-probabilities make each word's score.

    `rows[r]`: causal, tokens appended to the prompt; masked, `[n]` (the slot becomes n masks); seq2seq,
    the decoder's input ids. `positions[p] = (row, offset)`: causal, offset from the prompt's last token;
    masked, from the slot; seq2seq, the decoder column. `targets[i] = (position, token, word)`."""

    kind: str
    rows: list[list[int]]
    positions: list[tuple[int, int]]
    targets: list[tuple[int, int, int]]
    word_label: list[int]
    word_lengths: list[int]
    decoder_prefix: list[int] = field(default_factory=list)

    @classmethod
    def build(
        cls, kind: str, word_ids: Sequence[Sequence[int]], word_label: Sequence[int], decoder_prefix=()
    ):
        rows: list[list[int]] = []
        positions: list[tuple[int, int]] = []
        index: dict[tuple[int, int], int] = {}
        targets: list[tuple[int, int, int]] = []

        def position(row: int, offset: int) -> int:
            if (row, offset) not in index:
                index[(row, offset)] = len(positions)
                positions.append((row, offset))
            return index[(row, offset)]

        if kind in ("causal", "seq2seq"):
            prefix = list(decoder_prefix) if kind == "seq2seq" else []
            start = len(prefix) - 1 if kind == "seq2seq" else 0
            rows.append(list(prefix))
            for j, word in enumerate(word_ids):
                row = 0
                if len(word) > 1:  # later tokens are conditioned on the earlier ones: a row of its own
                    row = len(rows)
                    rows.append(prefix + list(word[:-1]))
                for t, token in enumerate(word):
                    targets.append((position(row, start + t), int(token), j))
        elif kind == "masked":
            lengths = sorted({len(w) for w in word_ids})
            for n in lengths:
                rows.append([n])
            for j, word in enumerate(word_ids):
                row = lengths.index(len(word))
                for t, token in enumerate(word):
                    targets.append((position(row, t), int(token), j))
        else:
            raise ModelError(f"cannot export a {kind!r} backbone: use a causal, masked or seq2seq model")
        return cls(
            kind,
            rows,
            positions,
            targets,
            [int(x) for x in word_label],
            [len(w) for w in word_ids],
            list(decoder_prefix),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScoringPlan:
        data = dict(data)
        data["positions"] = [tuple(p) for p in data["positions"]]
        data["targets"] = [tuple(t) for t in data["targets"]]
        return cls(**data)

    def arrays(
        self, prompts: Sequence[EncodedPrompt], pad_id: int, mask_id: int | None
    ) -> dict[str, np.ndarray]:
        """The graph's inputs for a batch of encoded prompts (right-padded int64 arrays)."""
        n_rows = len(self.rows)
        seqs: list[list[int]] = []
        rows_out: list[int] = []
        cols_out: list[int] = []
        for e, prompt in enumerate(prompts):
            ids = list(prompt.input_ids)
            if self.kind == "causal":
                seqs.extend(ids + suffix for suffix in self.rows)
                anchor = len(ids) - 1
            elif self.kind == "masked":
                s = prompt.slot_index
                seqs.extend(ids[:s] + [mask_id] * n + ids[s + 1 :] for (n,) in self.rows)
                anchor = s
            else:
                seqs.extend(ids for _ in self.rows)
                anchor = 0
            for row, offset in self.positions:
                rows_out.append(e * n_rows + row)
                cols_out.append(anchor + offset)
        input_ids, attention_mask = _pad(seqs, pad_id)
        out = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "score_rows": np.asarray(rows_out, dtype=np.int64),
            "score_cols": np.asarray(cols_out, dtype=np.int64),
        }
        if self.kind == "seq2seq":
            dec_ids, dec_mask = _pad([list(r) for r in self.rows] * len(prompts), pad_id)
            out["decoder_input_ids"] = dec_ids
            out["decoder_attention_mask"] = dec_mask
        return out


def _pad(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    width = max(len(s) for s in seqs)
    ids = np.full((len(seqs), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(seqs), width), dtype=np.int64)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = s
        mask[i, : len(s)] = 1
    return ids, mask


def head_arrays(encoded: Sequence[EncodedInput], pad_id: int, with_types: bool) -> dict[str, np.ndarray]:
    ids, mask = _pad([e.input_ids for e in encoded], pad_id)
    out = {"input_ids": ids, "attention_mask": mask}
    if with_types:
        types = np.zeros_like(ids)
        for i, e in enumerate(encoded):
            if e.token_type_ids is not None:
                types[i, : len(e.token_type_ids)] = e.token_type_ids
        out["token_type_ids"] = types
    return out


def onnx_folder(path: str | Path) -> Path:
    """The export folder for `path`: the folder itself, or the folder of a `.onnx` file in it."""
    path = Path(path)
    folder = path.parent if path.is_file() else path
    if not (folder / ONNX_CONFIG).exists():
        if not path.exists():
            raise ModelError(f"no such ONNX model: {path} (looked at {path.resolve()})")
        raise ModelError(
            f"{folder} holds no {ONNX_CONFIG}: point at a folder written by `promptft export RUN --onnx DIR`"
        )
    return folder


def is_onnx(path: str | Path) -> bool:
    """Whether `path` is an exported ONNX classifier (its folder, or the .onnx file in it)."""
    path = Path(path)
    return (path.is_file() and (path.parent / ONNX_CONFIG).exists()) or (path / ONNX_CONFIG).exists()


def onnx_saved_config(path: str | Path) -> dict[str, Any]:
    """What an ONNX folder's JSON says, as `recipes.evaluate.saved_classifier` gives it for a saved
    classifier (labels, fields, objective), plus `folder`; read without loading the graph."""
    folder = onnx_folder(path)
    config = json.loads((folder / ONNX_CONFIG).read_text())
    if config.get("type") == "prompt":
        from promptft.prompts.template import Template

        config["fields"] = list(Template(config["template"]).fields)
    config["folder"] = folder
    return config


def session_threads() -> int:
    """onnxruntime's intra-op threads: OMP_NUM_THREADS when set (a shared machine), else its default."""
    try:
        return max(int(os.environ.get("OMP_NUM_THREADS", "0")), 0)
    except ValueError:
        return 0


class OnnxClassifier(BaseClassifier):
    """A classifier exported to ONNX, run by onnxruntime on the CPU: predict, predict_proba, evaluate."""

    def __init__(self, folder: str | Path, model_file: str | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError as err:  # pragma: no cover - the [onnx] extra is part of the dev set-up
            raise ModelError("onnxruntime is not installed: pip install 'promptft[onnx]'") from err
        from transformers import AutoTokenizer

        self.folder = onnx_folder(folder)
        self.config = json.loads((self.folder / ONNX_CONFIG).read_text())
        if self.config.get("format_version", 0) > ONNX_FORMAT_VERSION:
            raise ModelError(f"{self.folder} was exported by a newer promptft: upgrade promptft to run it")
        path = Path(folder)
        self.model_path = path if path.is_file() else self.folder / (model_file or ONNX_MODEL)
        self.type = self.config["type"]
        self.labels = list(self.config["labels"])
        self.tokenizer = AutoTokenizer.from_pretrained(self.folder / TOKENIZER_DIR)
        self.pad_id = int(self.config["pad_id"])
        self.max_length = int(self.config["max_length"])
        self.base_model = self.config.get("base_model", "")
        self.adapter = None  # type: ignore[assignment]
        self.module = None  # type: ignore[assignment]
        options = ort.SessionOptions()
        options.intra_op_num_threads = session_threads()
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(self.model_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.input_names = {i.name for i in self.session.get_inputs()}
        if self.type == "prompt":
            self._init_prompt()
        else:
            self.fields = tuple(self.config["fields"])
            self.with_types = "token_type_ids" in self.input_names
        self._objective = objective_from_dict(self.config.get("objective"), self.labels)

    def _init_prompt(self) -> None:
        from promptft.models.backbones import _SlotFreeEncoder
        from promptft.prompts.encoding import PromptEncoder
        from promptft.prompts.template import Template

        self.template = Template(self.config["template"])
        self.fields = self.template.fields
        self.plan = ScoringPlan.from_dict(self.config["plan"])
        self.mask_id = self.tokenizer.mask_token_id
        slot = self.config.get("slot_text")
        reserve = max(self.plan.word_lengths) - 1
        if self.plan.kind == "seq2seq" and slot is None:
            self.encoder = _SlotFreeEncoder(self.tokenizer, self.template, max_length=self.max_length)
        else:
            reserve = 0 if self.plan.kind == "seq2seq" else reserve
            self.encoder = PromptEncoder(
                self.tokenizer, self.template, slot_text=slot, max_length=self.max_length, reserve=reserve
            )

    @classmethod
    def from_pretrained(cls, directory: str | Path, **_: Any) -> OnnxClassifier:
        return cls(directory)

    @property
    def device(self):
        import torch

        return torch.device("cpu")

    @property
    def finetune(self) -> str:
        return str(self.config.get("adapter", ""))

    def encode(self, examples: Sequence[Example]) -> list[Any]:
        examples = as_examples(examples, self.fields)
        if self.type == "prompt":
            return [self.encoder.encode(ex.fields) for ex in examples]
        out = []
        for ex in examples:
            missing = [f for f in self.fields if f not in ex.fields]
            if missing:
                raise DataError(
                    f"example lacks field(s) {missing} (it has {sorted(ex.fields)}): map those columns"
                )
            enc = self.tokenizer(
                *[ex.fields[f] for f in self.fields], truncation=True, max_length=self.max_length
            )
            types = enc.get("token_type_ids")
            out.append(EncodedInput(tuple(enc["input_ids"]), tuple(types) if types is not None else None))
        return out

    def run_arrays(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        feed = {k: v for k, v in arrays.items() if k in self.input_names}
        return self.session.run(["label_logits"], feed)[0]

    def arrays(self, encoded: Sequence[Any]) -> dict[str, np.ndarray]:
        if self.type == "prompt":
            return self.plan.arrays(encoded, self.pad_id, self.mask_id)
        return head_arrays(encoded, self.pad_id, self.with_types)

    def logits_encoded(self, encoded: Sequence[Any], batch_size: int = 32, progress: bool = False):
        import torch

        order = sorted(range(len(encoded)), key=lambda i: self.length_of(encoded[i]))
        out = np.zeros((len(encoded), len(self.labels)), dtype=np.float32)
        batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        iterator = batches
        if progress:
            from rich.progress import track

            iterator = track(batches, description="predicting", transient=True)
        for batch in iterator:
            out[batch] = self.run_arrays(self.arrays([encoded[i] for i in batch]))
        return torch.from_numpy(out)

    def describe(self) -> str:
        what = f"prompt {self.config.get('template')!r}" if self.type == "prompt" else "classification head"
        quant = self.config.get("quantization") or "fp32"
        return f"ONNX ({quant}) {what} on {self.base_model}"
