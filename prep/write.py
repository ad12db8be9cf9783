"""Writers: split Parquet files, mlx-lm JSONL, manifest.json, conflicts.jsonl and the summary table.

    write_outputs(corpus, assignment, config, drops, inputs)   # -> manifest dict

Outputs are byte-identical for the same inputs and seed: rows sorted by id, fixed Parquet writer settings, JSON with
sorted keys and no timestamps.
"""

from __future__ import annotations

import json
import platform
import sys
from collections import Counter
from importlib import metadata
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from common.config import config_dict, write_config
from common.contract import Contract
from prep.clean import Corpus, text_id
from prep.config import PrepConfig
from prep.split import SPLITS

SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("text", pa.string()),
        ("label", pa.int64()),
        ("source", pa.string()),
        ("group", pa.string()),
        ("category", pa.string()),
    ]
)
LABEL_NAMES = ("safe", "unsafe")


def write_outputs(corpus: Corpus, assignment: list[int], config: PrepConfig, drops: Counter, inputs: dict) -> dict:
    """Write every output into config.out and return the manifest."""
    out = Path(config.out)
    contract = config.contract()
    (out / config.format).mkdir(parents=True, exist_ok=True)
    counts: dict = {}
    for index, split in enumerate(SPLITS):
        rows = sorted(
            (
                text_id(corpus.texts[i]),
                corpus.texts[i],
                corpus.labels[i],
                corpus.sources[i],
                corpus.groups[i],
                corpus.categories[i],
            )
            for i in range(len(corpus))
            if assignment[i] == index
        )
        _write_parquet(rows, out / f"{split}.parquet")
        with (out / config.format / f"{split}.jsonl").open("w", encoding="utf-8", newline="\n") as handle:
            for row in rows:
                handle.write(json.dumps(mlx_record(contract, row[1], row[2]), ensure_ascii=False) + "\n")
        table: dict = {}
        for row in rows:
            per_source = table.setdefault(LABEL_NAMES[row[2]], {})
            per_source[row[3]] = per_source.get(row[3], 0) + 1
        counts[split] = {label: dict(sorted(sources.items())) for label, sources in sorted(table.items())}
    with (out / "conflicts.jsonl").open("w", encoding="utf-8", newline="\n") as handle:
        for conflict in corpus.conflicts:
            handle.write(json.dumps(conflict, ensure_ascii=False, sort_keys=True) + "\n")
    totals = {split: _total(counts[split]) for split in SPLITS}
    manifest = {
        "contract": contract.to_dict(),
        "counts": counts,
        "totals": totals,
        "class_balance": _balance(counts),
        "drops": dict(sorted(drops.items())),
        "drops_by_reason": drops_by_reason(drops),
        "conflicts": {"count": len(corpus.conflicts), "file": "conflicts.jsonl"},
        "dedup": corpus.stats,
        "inputs": inputs,
        "config": config_dict(config),
        "versions": package_versions(),
        "files": [f"{s}.parquet" for s in SPLITS] + [f"{config.format}/{s}.jsonl" for s in SPLITS],
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False, sort_keys=True) + "\n")
    write_config(config, out / "prep_config.json")
    return manifest


def mlx_record(contract: Contract, text: str, label: int) -> dict:
    """One mlx-lm training record in the contract's format."""
    if contract.format == "chat":
        return {
            "messages": [
                {"role": "system", "content": contract.system_prompt},
                {"role": "user", "content": contract.user_text(text)},
                {"role": "assistant", "content": contract.labels[label]},
            ]
        }
    prompt = contract.prompt_text(None, text)  # non-chat formats need no tokenizer
    if contract.format == "completion":
        return {"prompt": prompt, "completion": contract.answer_text(label)}
    return {"text": prompt + contract.answer_text(label)}


def _write_parquet(rows: list[tuple], path: Path) -> None:
    columns = list(zip(*rows, strict=True)) if rows else [[] for _ in SCHEMA]
    table = pa.table([pa.array(list(c), type=f.type) for c, f in zip(columns, SCHEMA, strict=True)], schema=SCHEMA)
    # Fixed settings so that the same rows give the same bytes.
    pq.write_table(table, path, compression="zstd", compression_level=3, use_dictionary=True, row_group_size=1 << 20)


def drops_by_reason(drops: Counter) -> dict:
    """Drop counts summed over sources (keys are "source:reason"; sources may contain ':')."""
    reasons: Counter = Counter()
    for key, n in drops.items():
        reasons[key.rsplit(":", 1)[1]] += n
    return dict(sorted(reasons.items()))


def _total(split_counts: dict) -> int:
    return sum(n for sources in split_counts.values() for n in sources.values())


def _balance(counts: dict) -> dict:
    labels = Counter()
    for split_counts in counts.values():
        for label, sources in split_counts.items():
            labels[label] += sum(sources.values())
    total = sum(labels.values()) or 1
    return {label: {"rows": labels[label], "share": round(labels[label] / total, 4)} for label in LABEL_NAMES}


def package_versions() -> dict:
    """Versions that shape the outputs."""
    versions = {"python": platform.python_version()}
    for name in ("pyarrow", "datasketch", "mlx-lm", "numpy", "datasets"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def summary_table(manifest: dict) -> str:
    """A plain-text table: rows per split and label, by source, then drops by reason."""
    counts = manifest["counts"]
    sources = sorted({s for split in counts.values() for lab in split.values() for s in lab})
    header = f"{'source':<40} " + " ".join(f"{s + '/' + lab[0]:>9}" for s in SPLITS for lab in LABEL_NAMES)
    lines = [header, "-" * len(header)]
    for source in sources + ["TOTAL"]:
        cells = []
        for split in SPLITS:
            for label in LABEL_NAMES:
                per = counts[split].get(label, {})
                cells.append(sum(per.values()) if source == "TOTAL" else per.get(source, 0))
        lines.append(f"{source[:40]:<40} " + " ".join(f"{c:>9}" for c in cells))
    balance = manifest["class_balance"]
    lines.append(
        "class balance: "
        + ", ".join(f"{lab} {balance[lab]['rows']} ({balance[lab]['share']:.1%})" for lab in LABEL_NAMES)
    )
    reasons = manifest["drops_by_reason"]
    lines.append("dropped: " + (", ".join(f"{r} {n}" for r, n in reasons.items()) if reasons else "nothing"))
    return "\n".join(lines)


def print_summary(manifest: dict) -> None:
    """Print the summary table to stdout."""
    print(summary_table(manifest), file=sys.stdout)
