"""Cache what frozen bottom layers compute, for training with LoRA on the top layers only.

When the embeddings and the first `split` decoder layers have no trainable parameters, their output for
a given prompt never changes during training. Computing it once per prompt, instead of once per step
and epoch, removes that share of the forward pass and the whole backward pass through those layers.

It works on any decoder whose body iterates `base_model.layers` in order and passes the hidden states
as the first argument (Llama, Mistral, Qwen, Gemma 1-3, Phi-3, SmolLM ...). Layers are swapped out
in place, never re-indexed, so per-layer settings looked up by index (Gemma's sliding/global layers)
stay right; the embeddings' own scaling is discarded because the cached tensor replaces layer input.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from promptft.errors import ModelError


class _Captured(Exception):  # noqa: N818 - control flow, not an error
    def __init__(self, hidden: torch.Tensor):
        self.hidden = hidden


class _StopBefore(nn.Module):
    """Stands in for layer `split`: hands its input (the frozen part's output) back and stops."""

    def forward(self, hidden_states, *args, **kwargs):
        raise _Captured(hidden_states)


class _Skip(nn.Module):
    def forward(self, hidden_states, *args, **kwargs):
        return hidden_states


class _Inject(nn.Module):
    """Stands in for layer `split - 1`: returns the cached hidden states instead of computing them."""

    def __init__(self, hidden: torch.Tensor):
        super().__init__()
        self.hidden = hidden

    def forward(self, hidden_states, *args, **kwargs):
        return self.hidden


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    layers = getattr(model.base_model, "layers", None)
    if not isinstance(layers, nn.ModuleList):
        raise ModelError(
            f"{type(model).__name__}: no `layers` list in the model body, so frozen layers cannot be cached"
        )
    return layers


def frozen_prefix_length(model: nn.Module) -> int:
    """How many bottom decoder layers (with the embeddings) have no trainable parameter."""
    try:
        layers = decoder_layers(model)
    except ModelError:
        return 0
    if any(p.requires_grad for p in model.get_input_embeddings().parameters()):
        return 0
    count = 0
    for layer in layers:
        if any(p.requires_grad for p in layer.parameters()):
            break
        count += 1
    return count


@contextmanager
def _swapped(layers: nn.ModuleList, replacements: dict[int, nn.Module]) -> Iterator[None]:
    saved = {i: layers[i] for i in replacements}
    try:
        for i, module in replacements.items():
            layers[i] = module
        yield
    finally:
        for i, module in saved.items():
            layers[i] = module


class PrefixCache:
    """Hidden states entering layer `split`, per distinct prompt row (token ids)."""

    def __init__(self, model: nn.Module, split: int, batch_size: int = 32):
        layers = decoder_layers(model)
        if not 1 <= split < len(layers):
            raise ModelError(f"cache split must be in [1, {len(layers) - 1}], got {split}")
        self.model = model
        self.split = split
        self.batch_size = batch_size
        self.store: dict[tuple[int, ...], torch.Tensor] = {}

    def _fill(self, rows: Sequence[tuple[int, ...]], pad) -> None:
        missing = sorted({r for r in rows if r not in self.store}, key=len)
        if not missing:
            return
        layers = decoder_layers(self.model)
        # Cached states are computed in eval mode: a frozen layer's dropout must not be frozen into the cache.
        was_training = self.model.training
        self.model.eval()
        try:
            self._compute(missing, layers, pad)
        finally:
            self.model.train(was_training)

    def _compute(self, missing, layers, pad) -> None:
        for start in range(0, len(missing), self.batch_size):
            chunk = missing[start : start + self.batch_size]
            ids, mask = pad(chunk)
            with torch.no_grad(), _swapped(layers, {self.split: _StopBefore()}):
                try:
                    self.model.base_model(input_ids=ids, attention_mask=mask)
                except _Captured as captured:
                    hidden = captured.hidden
                else:  # pragma: no cover - the stop layer always fires
                    raise ModelError("the model body did not reach the cached layer")
            for i, row in enumerate(chunk):
                self.store[row] = hidden[i, : len(row)].detach().clone()

    @contextmanager
    def injected(self, rows: Sequence[tuple[int, ...]], pad) -> Iterator[None]:
        """While active, a forward of the model over `rows` (padded by `pad`) runs only layers >= split:
        the layers below are skipped and layer split-1 returns the cached states. The forward itself is the
        caller's (the model's or peft's own), so the head, adapters and wrappers above stay on its path."""
        self._fill(rows, pad)
        ids, _ = pad(rows)
        first = self.store[rows[0]]
        cached = torch.zeros(
            ids.shape[0], ids.shape[1], first.shape[-1], dtype=first.dtype, device=ids.device
        )
        for i, row in enumerate(rows):
            cached[i, : len(row)] = self.store[row]
        layers = decoder_layers(self.model)
        replacements: dict[int, nn.Module] = {i: _Skip() for i in range(self.split - 1)}
        replacements[self.split - 1] = _Inject(cached)
        with _swapped(layers, replacements):
            yield
