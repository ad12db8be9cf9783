"""mlx-lm's lm-eval model class, made to score prompts exactly as serve does; registered as `psc-mlxlm`.

Importing this module registers the class with lm-eval. Differences from `mlx_lm.evaluate.MLXLM`:
accepts lm-eval's extra constructor arguments (`device`, `max_batch_size`, ...), loads LoRA adapters
(`adapter_path=`), never applies a chat template itself (the prompt_safety task renders the contract's template),
and tokenizes a rendered contract prompt with the contract's own rules (plain-text user text, head+tail truncation),
so its token ids equal serve's.

`loglikelihood` scores like serve does: the system prompt's KV cache once, the rest in length-sorted right-padded
batches on serve's concurrent streams, and one row per prompt for all its label words where the shorter ones are
prefixes of the longest ("safe", "uns" and "uns|afe" share the row `prompt + "uns"`). Same log-likelihoods as mlx-lm's
one-prompt-at-a-time loop (tested), 2.99x faster on 2 cores (`python -m evalharness.bench`). Requests outside the contract's template go to
mlx-lm's loop.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import mlx.core as mx
import numpy as np
from lm_eval.api.model import LM
from lm_eval.api.registry import register_model
from mlx_lm.evaluate import MLXLM
from mlx_lm.utils import load
from tqdm.auto import tqdm

from common.fast_math import use_fast_math
from common.prefix_cache import output_head, prefix_kv
from common.streams import StreamPool
from evalharness.data import resolve_contract
from serve.classifier import MAX_BATCH_TOKENS, default_workers, plan_batches

log = logging.getLogger(__name__)
MODEL_NAME = "psc-mlxlm"
_SLOT = "\u2063PSC_EVAL_SLOT\u2063"


@dataclass
class _Row:
    """One forward row after the shared prefix; its continuations are read from position `first` (the prompt's last).

    reads: (request index, continuation ids) of every request scored on this row.
    """

    ids: list[int]
    first: int
    reads: list[tuple[int, list[int]]] = field(default_factory=list)


@register_model(MODEL_NAME)
class ContractMLXLM(MLXLM):
    """MLXLM with adapters and contract-exact tokenization."""

    def __init__(
        self,
        pretrained: str | None = None,
        path_or_hf_repo: str | None = None,
        adapter_path: str | None = None,
        contract: str | None = None,
        batch_size: int | str = 32,
        max_tokens: int | None = None,
        **_ignored,  # lm-eval passes device, max_batch_size, ... which MLX does not use
    ) -> None:
        LM.__init__(self)
        model = pretrained or path_or_hf_repo
        if not model:
            raise ValueError("pass the model directory: model_args pretrained=DIR")
        self._model, self.tokenizer = load(model, adapter_path=adapter_path or None)
        use_fast_math(self._model)  # as serve: the same scores within ~1e-6
        self.contract = resolve_contract(model, adapter_path, contract)
        self._max_tokens = int(max_tokens) if max_tokens else None
        self._batch_size = int(batch_size) if str(batch_size).isdigit() else 32
        self.use_chat_template = False
        self._sampler = None
        self._before, self._after = self.contract.prompt_text(self.tokenizer, _SLOT).split(_SLOT)
        self._logged = False
        self._prefix_ids = self.contract.prompt_parts(self.tokenizer)[0]
        self._prefix_cache = None  # built on first use
        self._pool = StreamPool(default_workers())

    def apply_chat_template(self, chat_history, add_generation_prompt=True) -> str:
        raise ValueError("prompt_safety renders the contract's chat template itself; do not pass --apply_chat_template")

    def _tokenize(self, texts):
        return [tuple(self._encode(t)) for t in texts]

    def _encode(self, text: str) -> list[int]:
        """A rendered contract prompt (+ continuation) -> the contract's ids; other text -> plain encoding."""
        end = text.rfind(self._after)
        if not text.startswith(self._before) or end < len(self._before):
            return self.tokenizer.encode(text, add_special_tokens=False)
        user_text = text[len(self._before) : end]
        # The continuation follows the rendered template: trusted text (label word, no user content).
        tail = text[end + len(self._after) :]
        ids = self.contract.prompt_ids(self.tokenizer, user_text)
        return ids + (self.tokenizer.encode(tail, add_special_tokens=False) if tail else [])

    def loglikelihood(self, requests):
        if requests and not self._logged:
            self._logged = True
            context, continuation = requests[0].args
            ids = self._encode(context + continuation)
            log.info("first request: context=%r continuation=%r", context, continuation)
            log.info("first request tokens (last 12): %s", ids[-12:])
        rows, others = self._plan_rows(requests)
        results: list[tuple[float, bool] | None] = [None] * len(requests)
        if others:
            for index, result in zip(others, super().loglikelihood([requests[i] for i in others]), strict=True):
                results[index] = result
        if rows and self._prefix_cache is None:
            self._prefix_cache = prefix_kv(self._model, self._prefix_ids)
        batches = plan_batches([len(r.ids) for r in rows], self._batch_size, MAX_BATCH_TOKENS)
        for start in tqdm(range(0, len(batches), len(self._pool)), desc="loglikelihood", unit="batch"):
            group = [[rows[i] for i in batch] for batch in batches[start : start + len(self._pool)]]
            for batch_rows, (logprobs, greedy) in zip(group, self._pool.run(self._score, group), strict=True):
                logprobs, greedy = np.array(logprobs), np.array(greedy)  # one copy per batch, then plain indexing
                offset = 0
                for row in batch_rows:
                    for request, continuation in row.reads:  # gathered from row.first on
                        at = np.arange(offset, offset + len(continuation))
                        picked = logprobs[at, continuation]
                        results[request] = (float(picked.sum()), bool((greedy[at] == continuation).all()))
                    offset += len(row.ids) - row.first
        return results

    def _plan_rows(self, requests) -> tuple[list[_Row], list[int]]:
        """Rows to run (prompts sharing one row where their continuations allow) and the requests left to mlx-lm."""
        prefix, rows_of_context, context_ids_of, others = self._prefix_ids, {}, {}, []
        by_length = sorted(range(len(requests)), key=lambda i: -len(requests[i].args[1]))
        for index in by_length:
            context, continuation = requests[index].args
            if context not in context_ids_of:  # a prompt's choices share its context: encode it once
                context_ids_of[context] = self._encode(context)
            context_ids = context_ids_of[context]
            full = self._encode(context + continuation)
            tokens = full[len(context_ids) :]
            body = context_ids[len(prefix) :]
            if (
                full[: len(context_ids)] != context_ids
                or context_ids[: len(prefix)] != prefix
                or not tokens
                or not body
            ):
                others.append(index)
                continue
            wanted = body + tokens[:-1]
            rows = rows_of_context.setdefault(context, [])
            row = next((r for r in rows if r.ids[: len(wanted)] == wanted), None)
            if row is None:
                row = _Row(wanted, first=len(body) - 1)
                rows.append(row)
            row.reads.append((index, tokens))
        return [row for rows in rows_of_context.values() for row in rows], sorted(others)

    def _score(self, rows: list[_Row]) -> tuple[mx.array, mx.array]:
        """Log-probabilities and greedy tokens at every continuation position of a right-padded batch (lazy)."""
        width = max(len(r.ids) for r in rows)
        padded = mx.array([r.ids + [0] * (width - len(r.ids)) for r in rows], dtype=mx.int32)
        hidden = self._model.model(padded, cache=self._prefix_cache)
        # Only the positions continuations are read from: each row's last prompt position to its end.
        picks = [(i, p) for i, r in enumerate(rows) for p in range(r.first, len(r.ids))]
        gathered = hidden[mx.array([i for i, _ in picks]), mx.array([p for _, p in picks])]
        logits = output_head(self._model, gathered).astype(mx.float32)
        return logits - mx.logsumexp(logits, axis=-1, keepdims=True), mx.argmax(logits, axis=-1)
