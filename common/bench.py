"""`invoke bench`: run benchmark parts side by side in one run and collect their JSON + markdown.

    python -m common.bench --parts blas,prep,train,serve,lm_eval --out output/bench

Each part is a module `python -m <module> --out DIR` that writes DIR/<part>.json and DIR/<part>.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

PARTS = {
    "blas": "common.bench_blas",
    "prep": "prep.bench",
    "train": "finetune.bench",
    "serve": "serve.bench",
    "lm_eval": "evalharness.bench",
    "gguf": "finetune.gguf_check",  # needs the gguf-check extra (llama-cpp-python); not in the default parts
}
DEFAULT_PARTS = ("blas", "prep", "train", "serve", "lm_eval")


def run_parts(parts: list[str], out: Path, extra: list[str]) -> int:
    """Run each part as its own process (so BLAS on/off states never mix) and write summary.md."""
    out.mkdir(parents=True, exist_ok=True)
    failed = []
    for part in parts:
        started = time.time()
        print(f"bench: {part} ...", file=sys.stderr, flush=True)
        code = subprocess.run([sys.executable, "-m", PARTS[part], "--out", str(out), *extra]).returncode
        print(f"bench: {part} finished in {time.time() - started:.0f} s (exit {code})", file=sys.stderr)
        if code != 0:
            failed.append(part)
    sections = [f"# Benchmarks\n\nMachine: {_machine()}\n"]
    for part in PARTS:
        md = out / f"{part}.md"
        if md.exists():
            sections.append(md.read_text().strip() + "\n")
    (out / "summary.md").write_text("\n".join(sections))
    print((out / "summary.md").read_text())
    if failed:
        print(f"error: bench parts failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def _machine() -> str:
    import os
    import platform

    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"


def write_result(out: Path, part: str, result: dict, markdown: str) -> None:
    """Write <part>.json and <part>.md (used by every part)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{part}.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / f"{part}.md").write_text(markdown.strip() + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m common.bench", description="Run benchmark parts.")
    parser.add_argument(
        "--parts", default=",".join(DEFAULT_PARTS), help=f"comma-separated parts of: {', '.join(PARTS)}"
    )
    parser.add_argument("--out", type=Path, default=Path("output/bench"), help="output directory")
    parser.add_argument("--quick", action="store_true", help="smaller inputs, for a fast check")
    args = parser.parse_args(argv)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        print(f"error: unknown bench parts {unknown}; choose from {', '.join(PARTS)}", file=sys.stderr)
        return 2
    return run_parts(parts, args.out, ["--quick"] if args.quick else [])


if __name__ == "__main__":
    sys.exit(main())
