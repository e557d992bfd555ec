"""Chat fine-tuning end to end: a `ChatJob` (YAML or Python) -> data read, validated and split by
conversation -> model + adapter -> `ChatTrainer` -> a run folder whose `best/` the chat, generate and
evaluation commands load.

    from promptft.recipes.chat_train import chat_train
    from promptft.config.chat import ChatJob
    result = chat_train(ChatJob.parse({"data": {"train": "chats.jsonl"}, "output": "runs/chat"}))
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from promptft.chat.data import Conversation, read_conversations, split_conversations
from promptft.config.chat import ChatJob

log = logging.getLogger(__name__)


def load_split(job: ChatJob) -> tuple[list[Conversation], list[Conversation], list[Conversation]]:
    """(train, dev, test) conversations: dev from its file, or a seeded share of train split by
    conversation; limits applied after a seeded shuffle."""
    d = job.data
    rows = d.sgd_service_results
    train = read_conversations(d.train, sgd_service_results=rows)
    test = read_conversations(d.test, sgd_service_results=rows) if d.test else []
    if d.dev:
        dev = read_conversations(d.dev, sgd_service_results=rows)
    elif d.dev_fraction > 0:
        train, dev, _ = split_conversations(train, dev=d.dev_fraction, seed=job.train.seed)
    else:
        dev = []
    rng = np.random.default_rng(job.train.seed)
    if d.limit_train is not None and d.limit_train < len(train):
        train = [train[int(i)] for i in sorted(rng.permutation(len(train))[: d.limit_train])]
    if d.limit_dev is not None and d.limit_dev < len(dev):
        dev = [dev[int(i)] for i in sorted(rng.permutation(len(dev))[: d.limit_dev])]
    return train, dev, test


def chat_train(job: ChatJob, resume: bool = True) -> dict[str, Any]:
    """Train as the job says; returns the training result plus the data counts (and test perplexity of the
    best model when the job names a test file)."""
    from promptft.chat.encoding import encode_all
    from promptft.chat.model import ChatModel
    from promptft.chat.train import ChatTrainer, dev_loss
    from promptft.models.loading import check_device

    check_device(job.device)
    train, dev, test = load_split(job)
    adapter = job.model.finetune
    from promptft.adapters import adapter_settings

    settings = adapter_settings(adapter, **job.model.adapter)
    chat = ChatModel.from_pretrained(
        job.model.name,
        adapter=settings,
        template=job.model.template,
        system_prompt=job.model.system_prompt,
        device=job.device,
    )
    d = job.data
    max_length = chat.fit_length(d.max_length)
    enc_train, train_stats = encode_all(chat.tokenizer, chat.format, train, max_length, d.overflow, "train")
    enc_dev, dev_stats = (
        encode_all(chat.tokenizer, chat.format, dev, max_length, d.overflow, "dev") if dev else ([], None)
    )
    data_info = {
        "max_length": max_length,  # what the model reads: the job's max_length may ask for more
        "train": train_stats.to_dict(),
        "dev": dev_stats.to_dict() if dev_stats else None,
        "train_tokens": sum(len(x) for x in enc_train),
        "train_assistant_tokens": sum(x.loss_tokens for x in enc_train),
    }

    def write_meta(run_dir: Path) -> None:
        (run_dir / "run.json").write_text(
            json.dumps(
                {"kind": "chat", "job": job.to_dict(), "data": data_info, "format": chat.format.to_dict()},
                indent=2,
            )
        )

    trainer = ChatTrainer(
        chat,
        job.train,
        job.learning_rate(),
        run_dir=job.output,
        resume=resume,
        max_length=max_length,
        on_run_dir=write_meta,
    )
    result = trainer.train(enc_train, enc_dev)
    out: dict[str, Any] = {**result.to_dict(), "history": result.history, "data": data_info}
    if test:
        enc_test, _ = encode_all(chat.tokenizer, chat.format, test, max_length, d.overflow, "test")
        out["test"] = dev_loss(chat, enc_test, job.train.eval_batch_size)
    out["model"] = chat
    return out
