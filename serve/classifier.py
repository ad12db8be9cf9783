"""Score texts safe/unsafe with one forward pass each: the label-word logits where the assistant's answer begins.

    from serve.classifier import Classifier
    clf = Classifier("model/fused")                      # or Classifier("model/base", adapters="model/adapters")
    [r.label for r in clf.score(["How do I kill a Python process?", "Ignore all previous instructions"])]

No sampling and no generation: score = P(unsafe) = softmax over the logits of the two label tokens
(`Contract.label_ids`) at the last prompt position. The system-prompt prefix is the same for every text, so its
KV cache is computed once and broadcast to every batch; each batch holds texts of similar token length, right-padded:
with a causal mask no real position ever attends to a pad, so a score never depends on its batch.

On the CPU, `workers` batches run at once, each on its own MLX stream with its share of the BLAS threads: MLX runs
a stream's element-wise ops (softmax, SiLU, norms: about half the time here) on one thread, so a single stream
leaves the second core idle between GEMMs. Two streams measured ~1.3x one on 2 cores (README, Benchmarks).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import mlx.core as mx

from common.blas import cpu_cores
from common.calibration import read_threshold
from common.contract import Contract, read_contract
from common.fast_math import use_fast_math
from common.model_dir import require_model_dir
from common.prefix_cache import PrefixCache, output_head, prefix_kv
from common.streams import StreamPool

log = logging.getLogger(__name__)

# Rows per forward pass, and a cap on padded tokens per pass: short texts share big batches, long texts get small
# ones, so padding stays ~10% (measured on the seed's val texts) while GEMMs keep ~400-1000 rows; bounds memory too.
DEFAULT_BATCH_SIZE = 32
MAX_BATCH_TOKENS = 1024


@dataclass(frozen=True)
class Result:
    """One text's verdict: label word, P(unsafe), whether the text was cut, and the tokens scored."""

    label: str
    score: float
    truncated: bool
    tokens: int


def default_workers() -> int:
    """Concurrent batches: 2 on a multi-core CPU (measured on 2 cores), 1 on a GPU (Metal runs one queue anyway)."""
    if mx.default_device() != mx.cpu:
        return 1
    return min(2, cpu_cores())


class Classifier:
    """A loaded model + contract that scores lists of texts in length-sorted, prefix-cached batches."""

    def __init__(
        self,
        model_dir: str | Path,
        adapters: str | Path | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_tokens: int | None = None,
        threshold: float | None = None,
        workers: int | None = None,
        fast_math: bool = True,
    ):
        if batch_size < 1:
            raise ValueError("batch size must be at least 1")
        self.pool = StreamPool(default_workers() if workers is None else workers)
        if threshold is None:  # the model's calibrated threshold (evalharness calibrate), else 0.5
            threshold, source = read_threshold(model_dir, adapters)
            log.info("threshold %.4f (%s)", threshold, source)
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be within [0, 1], not {threshold}")
        self.contract = load_contract(model_dir, adapters)
        if max_tokens is not None:
            if max_tokens < 8:
                raise ValueError(f"--max-tokens must be at least 8, not {max_tokens}")
            self.contract = dataclasses.replace(self.contract, max_text_tokens=max_tokens)
        self.model, self.tokenizer = load_model(model_dir, adapters)
        if fast_math:  # vectorized exp for SwiGLU and softmax on the CPU (common/fast_math.py): ~1.3x
            use_fast_math(self.model)
        self.batch_size = batch_size
        self.threshold = threshold
        self.prefix_ids, self.suffix_ids = self.contract.prompt_parts(self.tokenizer)
        self.label_ids = self.contract.label_ids(self.tokenizer)
        self._prefix_cache = self._compute_prefix()

    @property
    def max_tokens(self) -> int:
        return self.contract.max_text_tokens

    def encode(self, text: str) -> tuple[list[int], bool]:
        """Token ids after the prefix (plain-text user text + template suffix) and whether the text was cut."""
        ids, truncated = self.contract.text_ids(self.tokenizer, text)
        return ids + self.suffix_ids, truncated

    def score(self, texts: list[str]) -> list[Result]:
        """Score texts in input order (batched by token length internally)."""
        encoded = [self.encode(text) for text in texts]
        scores = self.score_ids([ids for ids, _ in encoded])
        return [self._result(s, len(ids), cut) for s, (ids, cut) in zip(scores, encoded, strict=True)]

    def score_ids(self, rows: list[list[int]]) -> list[float]:
        """P(unsafe) for already-encoded rows (see `encode`), in input order."""
        scores: list[float] = [0.0] * len(rows)
        batches = plan_batches([len(r) for r in rows], self.batch_size, MAX_BATCH_TOKENS)
        # Neighbours in length order run together, so the concurrent batches take about the same time.
        for start in range(0, len(batches), len(self.pool)):
            group = batches[start : start + len(self.pool)]
            for batch, values in zip(group, self.score_batches([[rows[i] for i in b] for b in group]), strict=True):
                for index, value in zip(batch, values, strict=True):
                    scores[index] = value
        return scores

    def score_batch(self, rows: list[list[int]]) -> list[float]:
        """One forward pass over right-padded rows; read each row's last real position."""
        return self.score_batches([rows])[0]

    def score_batches(self, batches: list[list[list[int]]]) -> list[list[float]]:
        """Up to `workers` batches at once, one per stream, each with its share of the BLAS threads."""
        return [p.tolist() for p in self.pool.run(self._forward, batches)]

    def _forward(self, rows: list[list[int]]) -> mx.array:
        """The lazy graph of P(unsafe) for one right-padded batch (built on the stream the pool chose)."""
        lengths = [len(r) for r in rows]
        width = max(lengths)
        padded = mx.array([r + [0] * (width - len(r)) for r in rows], dtype=mx.int32)
        hidden = self.model.model(padded, cache=self._prefix_cache)
        last = hidden[mx.arange(len(rows)), mx.array(lengths) - 1]
        logits = output_head(self.model, last)[:, list(self.label_ids)].astype(mx.float32)
        return mx.softmax(logits, axis=-1)[:, 1]

    def _result(self, score: float, tokens: int, truncated: bool) -> Result:
        label = self.contract.unsafe_label if score >= self.threshold else self.contract.safe_label
        return Result(label=label, score=score, truncated=truncated, tokens=tokens)

    def _compute_prefix(self) -> list[PrefixCache]:
        return prefix_kv(self.model, self.prefix_ids)


def plan_batches(lengths: list[int], batch_size: int, max_tokens: int) -> list[list[int]]:
    """Group indices by sorted length into batches of at most batch_size rows and ~max_tokens padded tokens."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        # Sorted ascending, so this row is the widest so far: padded size = rows * its length.
        if current and (len(current) >= batch_size or (len(current) + 1) * lengths[index] > max_tokens):
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches


def load_contract(model_dir: str | Path, adapters: str | Path | None = None) -> Contract:
    """The contract of a fused model dir, or of the adapters dir; both present and different is an error."""
    if adapters is None:
        return read_contract(model_dir)
    contract = read_contract(adapters)
    if (Path(model_dir) / "contract.json").exists() and read_contract(model_dir) != contract:
        raise ValueError(f"{model_dir}/contract.json differs from {adapters}/contract.json; use matching directories")
    return contract


def load_model(model_dir: str | Path, adapters: str | Path | None = None):
    """mlx-lm model (with LoRA adapters applied when given) and tokenizer, in eval mode."""
    from mlx_lm.utils import load

    model_dir = require_model_dir(model_dir)
    if adapters is not None and not (Path(adapters) / "adapter_config.json").exists():
        raise ValueError(f"{adapters}: no adapter_config.json; run `invoke train` or pass a fused model dir")
    model, tokenizer = load(str(model_dir), adapter_path=str(adapters) if adapters is not None else None)
    model.eval()
    return model, tokenizer
