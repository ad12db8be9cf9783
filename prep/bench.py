"""Bench part `prep`: wall time of prep on the builtin corpus (warm cache) and peak memory on a large local JSONL.

    python -m prep.bench --out output/bench [--quick]

(a) `python -m prep` on the builtin corpus, timed as a subprocess (target <= 3 min on 2 cores, warm cache);
(b) a generated 1,000,000-row JSONL (100,000 with --quick: 10% exact and near-duplicates) through `python -m prep`,
with the child's peak RSS from wait4() (target <= 2 GB). Writes prep.json and prep.md via common.bench.write_result.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common.bench import write_result

WORDS = [
    a + b
    for a in (
        "al",
        "be",
        "co",
        "da",
        "el",
        "fo",
        "gi",
        "ha",
        "in",
        "jo",
        "ka",
        "lu",
        "mo",
        "ne",
        "or",
        "pa",
        "qu",
        "ri",
    )
    for b in (
        "ba",
        "ce",
        "di",
        "fo",
        "gu",
        "hi",
        "ja",
        "ke",
        "li",
        "mo",
        "nu",
        "pe",
        "ra",
        "se",
        "ti",
        "vo",
        "wa",
        "xe",
    )
]


def generate_jsonl(path: Path, rows: int, seed: int = 0) -> None:
    """Random-word texts (~100 chars, label from the first word); every 20th row repeats an earlier one in upper
    case, every 20th repeats one with a word changed (a near-duplicate, sometimes with the other label)."""
    rng = random.Random(seed)
    recent: list[str] = []
    with path.open("w", encoding="utf-8") as handle:
        for i in range(rows):
            if i % 20 == 10 and recent:
                text = rng.choice(recent).upper()  # exact duplicate after normalization
            elif i % 20 == 15 and recent:
                words = rng.choice(recent).split()
                words[rng.randrange(len(words))] = rng.choice(WORDS)
                text = " ".join(words)
            else:
                text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 30)))
                recent = (recent + [text])[-1000:]
            handle.write(json.dumps({"text": text, "label": int(text[0].lower() < "j")}) + "\n")


def run_timed(args: list[str]) -> dict:
    """Run `python -m prep ARGS`; seconds, exit code and the child's peak RSS (MiB) from wait4."""
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "prep", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # Read the pipes while it runs so a full pipe never blocks it; wait4 then gives this child's own rusage.
    stdout, stderr = process.stdout.read(), process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return {
        "seconds": round(time.perf_counter() - started, 1),
        "exit": process.returncode,
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),  # Linux reports KiB
        "summary": stdout.decode(errors="replace").strip().splitlines()[-2:],
        "stderr_tail": stderr.decode(errors="replace").strip().splitlines()[-1:] if process.returncode else [],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m prep.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("output/bench"), help="directory for prep.json and prep.md")
    parser.add_argument("--quick", action="store_true", help="100,000 generated rows instead of 1,000,000")
    parser.add_argument("--skip-builtin", action="store_true", help="only the generated-file part")
    args = parser.parse_args(argv)
    rows = 100_000 if args.quick else 1_000_000
    result: dict = {"generated_rows": rows}
    with tempfile.TemporaryDirectory(prefix="prep-bench-") as tmp:
        tmp = Path(tmp)
        if not args.skip_builtin:
            print("prep bench: builtin corpus ...", file=sys.stderr, flush=True)
            result["builtin"] = run_timed(["--out", str(tmp / "builtin")])
            if result["builtin"]["exit"] == 0:
                manifest = json.loads((tmp / "builtin" / "manifest.json").read_text())
                result["builtin"]["rows"] = manifest["totals"]
                result["builtin"]["class_balance"] = manifest["class_balance"]
        print(f"prep bench: generating {rows:,} rows ...", file=sys.stderr, flush=True)
        source = tmp / "generated.jsonl"
        generate_jsonl(source, rows)
        result["generated_mib"] = round(source.stat().st_size / 2**20, 1)
        print("prep bench: prep on the generated file ...", file=sys.stderr, flush=True)
        result["large"] = run_timed(["--sources", str(source), "--out", str(tmp / "large")])
        if result["large"]["exit"] == 0:
            manifest = json.loads((tmp / "large" / "manifest.json").read_text())
            result["large"]["rows"] = manifest["totals"]
            result["large"]["drops_by_reason"] = manifest["drops_by_reason"]
    write_result(args.out, "prep", result, markdown(result))
    print(markdown(result))
    failed = [k for k in ("builtin", "large") if k in result and result[k]["exit"] != 0]
    return 1 if failed else 0


def markdown(result: dict) -> str:
    """The prep section of the bench summary."""
    lines = ["## prep", "", "| run | rows kept | seconds | peak RSS (MiB) | target |", "|---|---|---|---|---|"]
    if "builtin" in result:
        b = result["builtin"]
        kept = sum(b.get("rows", {}).values()) if b["exit"] == 0 else f"failed (exit {b['exit']})"
        lines.append(f"| builtin corpus, warm cache | {kept} | {b['seconds']} | {b['peak_rss_mib']} | <= 180 s |")
    large = result["large"]
    kept = sum(large.get("rows", {}).values()) if large["exit"] == 0 else f"failed (exit {large['exit']})"
    lines.append(
        f"| generated JSONL, {result['generated_rows']:,} rows ({result['generated_mib']} MiB) | {kept} | "
        f"{large['seconds']} | {large['peak_rss_mib']} | <= 2048 MiB |"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
