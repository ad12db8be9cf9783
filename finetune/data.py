"""Training data: prepared splits -> contract token ids -> padded, length-bucketed batches.

    examples = load_split(Path("data/processed"), "train")
    encoded = encode_examples(examples, tokenizer, contract)
    batch = make_batch([encoded[i] for i in plan.batch(step)], n_answer_tokens)

Every example is `prefix + suffix`, where the prefix (system prompt and chat header) is the same token list for all
texts: training runs it once per step and shares its keys/values across the batch (see train.py). The suffix is the
user's text, the assistant header and the answer; the loss covers only the answer tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.config import parse_pairs
from common.contract import Contract
from common.jsonl import jsonl_records


@dataclass(frozen=True)
class Encoded:
    """One example: suffix tokens (text + header + answer), where the answer starts, and the label."""

    suffix: tuple[int, ...]
    answer_start: int
    label: int

    @property
    def answer_len(self) -> int:
        return len(self.suffix) - self.answer_start

    @property
    def inputs(self) -> tuple[int, ...]:
        """What the model reads: the suffix without its last token (the last one is only predicted)."""
        return self.suffix[:-1]


def load_split(data_dir: Path, split: str, labels: tuple[str, str] = ("safe", "unsafe")) -> list[tuple[str, int]]:
    """(text, label) pairs from `<data>/<split>.parquet`, else `<data>/chat/<split>.jsonl` (mlx-lm chat format,
    the assistant's answer one of the contract's `labels`)."""
    data_dir = Path(data_dir)
    parquet = data_dir / f"{split}.parquet"
    if parquet.exists():
        import pyarrow.parquet as pq

        table = pq.read_table(parquet, columns=["text", "label"])
        rows = list(zip(table.column("text").to_pylist(), table.column("label").to_pylist(), strict=True))
    else:
        jsonl = data_dir / "chat" / f"{split}.jsonl"
        if not jsonl.exists():
            raise ValueError(f"{data_dir}: no {split}.parquet or chat/{split}.jsonl; run `invoke prep` first")
        rows = [_chat_row(record, where, labels) for where, record in jsonl_records(jsonl)]
    bad = [label for _, label in rows if label not in (0, 1)]
    if bad:
        raise ValueError(f"{data_dir}/{split}: labels must be 0 (safe) or 1 (unsafe); found {sorted(set(bad))[:5]}")
    if not rows:
        raise ValueError(f"{data_dir}/{split}: the split is empty")
    return [(str(text), int(label)) for text, label in rows]


def parse_repeat(text: str) -> dict[str, int]:
    """Source prefixes and how many times their train rows are shown per epoch, from "project=2,bastion=2"."""
    form = "SOURCE=TIMES with TIMES a whole number >= 1, e.g. project=2"
    repeat = {}
    for prefix, times in parse_pairs(text, "--repeat", form).items():
        if not times.isdigit() or int(times) < 1:
            raise ValueError(f"--repeat: {prefix}={times} must be {form}")
        repeat[prefix.rstrip("/")] = int(times)
    return repeat


def repeat_rows(rows: list, sources: list[str], repeat: dict[str, int]) -> list:
    """Each row as many times as its source's repeat (a source matches a prefix equal to it or to a folder of it;
    the longest prefix wins). A prefix that matches no source is an error: it is most likely a typo."""
    unique = set(sources)
    unmatched = [p for p in repeat if not any(_matches(s, p) for s in unique)]
    if unmatched:
        raise ValueError(f"--repeat names {unmatched}, which match no train source; sources: {sorted(unique)}")
    times = {}
    for source in unique:
        matching = [p for p in repeat if _matches(source, p)]
        times[source] = repeat[max(matching, key=len)] if matching else 1
    return [row for row, source in zip(rows, sources, strict=True) for _ in range(times[source])]


def _matches(source: str, prefix: str) -> bool:
    return source == prefix or source.startswith(prefix + "/")


def load_sources(data_dir: Path, split: str) -> list[str]:
    """The `source` column of `<data>/<split>.parquet`, row for row with load_split."""
    parquet = Path(data_dir) / f"{split}.parquet"
    if not parquet.exists():
        raise ValueError(f"{parquet}: --repeat needs prep's Parquet split (the chat JSONL has no sources)")
    import pyarrow.parquet as pq

    return [str(s) for s in pq.read_table(parquet, columns=["source"]).column("source").to_pylist()]


def _chat_row(record, where: str, labels: tuple[str, str]) -> tuple[str, int]:
    try:
        messages = {m["role"]: m["content"] for m in record.get("messages", [])}
    except (AttributeError, KeyError, TypeError):  # not an object, or turns without role/content
        messages = {}
    if "user" not in messages or messages.get("assistant") not in labels:
        raise ValueError(f"{where}: each line needs a user message and an assistant answer, one of {list(labels)}")
    return messages["user"], labels.index(messages["assistant"])


def encode_examples(rows: list[tuple[str, int]], tokenizer, contract: Contract) -> list[Encoded]:
    """Token ids exactly as serve builds them (contract.prompt_ids) plus the answer tokens."""
    _, after = contract.prompt_parts(tokenizer)
    answers = [contract.answer_ids(tokenizer, label) for label in (0, 1)]
    encoded = []
    for text, label in rows:
        text_ids, _ = contract.text_ids(tokenizer, text)
        head = text_ids + after
        encoded.append(Encoded(tuple(head + answers[label]), len(head), label))
    return encoded


def round_up(n: int, multiple: int = 8) -> int:
    """Pad lengths to a multiple so compiled steps see few distinct shapes."""
    return ((n + multiple - 1) // multiple) * multiple


@dataclass(frozen=True)
class Batch:
    """Numpy arrays for one (sub-)batch: inputs, answer positions/targets/mask, labels, real token count."""

    inputs: np.ndarray  # (B, S) int32, right-padded suffixes without their last token
    positions: np.ndarray  # (B, A) int32, where each answer token is predicted
    targets: np.ndarray  # (B, A) int32
    mask: np.ndarray  # (B, A) float32, 1 for real answer tokens
    labels: np.ndarray  # (B,) int32
    tokens: int  # real suffix tokens in this batch (without padding)


def make_batch(examples: list[Encoded], answer_width: int) -> Batch:
    """Pad a list of examples into arrays; `answer_width` is the longest answer in the contract."""
    n = len(examples)
    width = round_up(max(len(e.suffix) - 1 for e in examples))
    inputs = np.zeros((n, width), np.int32)
    positions = np.zeros((n, answer_width), np.int32)
    targets = np.zeros((n, answer_width), np.int32)
    mask = np.zeros((n, answer_width), np.float32)
    for i, e in enumerate(examples):
        inputs[i, : len(e.inputs)] = e.inputs
        k = e.answer_len
        # The token at suffix index j is predicted at index j - 1.
        positions[i, :k] = np.arange(e.answer_start - 1, len(e.suffix) - 1)
        targets[i, :k] = e.suffix[e.answer_start :]
        mask[i, :k] = 1.0
    labels = np.array([e.label for e in examples], np.int32)
    return Batch(inputs, positions, targets, mask, labels, sum(len(e.suffix) for e in examples))


class BatchPlan:
    """Deterministic global batches: per epoch a seeded shuffle, then length-sorted pools cut into batches.

    Sorting within pools of `pool_batches` batches keeps padding low while batches stay mixed; batch `step` is a
    pure function of (seed, step), so resuming needs only the step count. Long texts are mostly jailbreaks, so plain
    length sorting makes batches label-skewed; given `labels`, each label is sorted by length apart and the pool is
    ordered by length rank within its label, so every batch gets the pool's label mix (at some extra padding).
    """

    def __init__(
        self, lengths: list[int], batch_size: int, seed: int, pool_batches: int, labels: list[int] | None = None
    ):
        if len(lengths) < batch_size:
            raise ValueError(f"the training split has {len(lengths)} examples, fewer than batch_size={batch_size}")
        self.lengths = np.asarray(lengths)
        self.labels = None if labels is None else np.asarray(labels)
        self.batch_size = batch_size
        self.seed = seed
        self.pool = pool_batches * batch_size
        self.per_epoch = len(lengths) // batch_size
        self._epoch = -1
        self._batches: list[np.ndarray] = []

    def batch(self, step: int) -> np.ndarray:
        """Indices of the global batch for a 0-based step."""
        epoch, index = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            self._batches = self._epoch_batches(epoch)
            self._epoch = epoch
        return self._batches[index]

    def _epoch_batches(self, epoch: int) -> list[np.ndarray]:
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(len(self.lengths))[: self.per_epoch * self.batch_size]
        batches = []
        for start in range(0, len(order), self.pool):
            pool = order[start : start + self.pool]
            pool = pool[np.argsort(self._sort_keys(pool), kind="stable")]
            batches.extend(pool[i : i + self.batch_size] for i in range(0, len(pool), self.batch_size))
        return [batches[i] for i in rng.permutation(len(batches))]

    def _sort_keys(self, pool: np.ndarray) -> np.ndarray:
        """Length, or with labels each row's length quantile within its own label in this pool."""
        lengths = self.lengths[pool]
        if self.labels is None:
            return lengths
        keys = np.empty(len(pool))
        for label in np.unique(self.labels[pool]):
            rows = np.flatnonzero(self.labels[pool] == label)
            ranks = np.argsort(np.argsort(lengths[rows], kind="stable"), kind="stable")
            keys[rows] = (ranks + 0.5) / len(rows)
        return keys


def shard(indices: np.ndarray, rank: int, size: int) -> np.ndarray:
    """This rank's part of a global batch (strided so neighbours in length go to different ranks)."""
    return indices[rank::size]


def eval_sample(n_rows: int, n: int, seed: int) -> np.ndarray:
    """Fixed validation sample, sorted by index (same for every evaluation and every resume)."""
    rng = np.random.default_rng([seed, 7])
    return np.sort(rng.permutation(n_rows)[: min(n, n_rows)])
