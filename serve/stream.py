"""Streaming stdin -> stdout: read lines in windows, score each window, write and flush its lines in input order.

    counts = stream(classifier, input_mode="auto", output_mode="jsonl")   # reads fd 0, writes fd 1

A reader thread pulls raw bytes from the input fd into a bounded queue (memory stays bounded on unbounded input).
A window is up to `window` lines, or fewer when no line arrives for READ_TIMEOUT s, so slow producers still see
results promptly. Windows start at 1 line and double, so the first result comes after one short forward pass.
"""

from __future__ import annotations

import logging
import os
import queue
import sys
import threading
import time
from collections import Counter
from typing import BinaryIO

from serve.io import format_error, format_result, oversized_line, parse_line

log = logging.getLogger(__name__)

READ_TIMEOUT = 0.05  # seconds to wait for more lines before scoring a partial window
MAX_LINE_BYTES = 4 << 20  # longer lines become an error line (the rest of such a line is skipped, not buffered)
_CHUNK = 1 << 16
_EOF = object()


class LineReader:
    """A daemon thread splitting an fd's bytes into lines (os.read: no Python file lock held while blocked)."""

    def __init__(self, fd: int, max_queued: int, max_line: int = MAX_LINE_BYTES):
        self.fd = fd
        self.max_line = max_line
        self.lines: queue.Queue = queue.Queue(maxsize=max_queued)
        self.thread = threading.Thread(target=self._run, name="serve-reader", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        pending = bytearray()
        skipping = False  # inside an oversized line: drop bytes until its newline
        while True:
            try:
                chunk = os.read(self.fd, _CHUNK)
            except OSError as exc:  # e.g. EIO from a closed terminal: treat as end of input
                log.warning("reading input failed: %s", exc)
                chunk = b""
            if not chunk:
                break
            start = 0
            while True:
                end = chunk.find(b"\n", start)
                if end < 0:
                    break
                if not skipping:
                    pending += chunk[start:end]
                    self.lines.put(bytes(pending))
                pending.clear()
                skipping = False
                start = end + 1
            if not skipping:
                pending += chunk[start:]
                if len(pending) > self.max_line:
                    self.lines.put(None)  # None stands for "oversized line"
                    pending.clear()
                    skipping = True
        if pending and not skipping:
            self.lines.put(bytes(pending))  # a last line without a newline still counts
        self.lines.put(_EOF)

    def next_window(self, limit: int) -> tuple[list, bool]:
        """Up to `limit` raw lines: block for the first, then take what arrives within READ_TIMEOUT; and EOF seen."""
        window: list = []
        while True:
            try:  # a timeout keeps Ctrl-C responsive
                item = self.lines.get(timeout=0.5)
                break
            except queue.Empty:
                continue
        deadline = time.monotonic() + READ_TIMEOUT
        while item is not _EOF:
            window.append(item)
            if len(window) >= limit:
                return window, False
            try:
                item = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return window, False
        return window, True


def stream(
    classifier,
    input_mode: str = "auto",
    output_mode: str = "jsonl",
    window: int = 64,
    fd_in: int = 0,
    out: BinaryIO | None = None,
) -> Counter:
    """Classify every input line, writing one output line per input line in order; return the counts."""
    out = out or sys.stdout.buffer
    reader = LineReader(fd_in, max_queued=max(window, 16))  # bounded: at most ~2 windows of lines in memory
    counts: Counter = Counter()
    started = time.monotonic()
    limit = 1
    try:
        eof = False
        while not eof:
            raws, eof = reader.next_window(limit)
            limit = min(limit * 2, window)
            if not raws:
                continue
            lines = [oversized_line(MAX_LINE_BYTES) if raw is None else parse_line(raw, input_mode) for raw in raws]
            todo = [line for line in lines if line.text is not None]
            results = iter(classifier.score([line.text for line in todo]))
            output = []
            for line in lines:
                if line.text is None:
                    counts["error"] += 1
                    output.append(format_error(line, output_mode))
                else:
                    result = next(results)
                    counts[result.label] += 1
                    counts["truncated"] += result.truncated
                    output.append(format_result(line, result, output_mode))
            out.write(b"".join(output))
            out.flush()
            counts["lines"] += len(lines)
            if counts["lines"] == len(lines):
                log.info("first result after %.2f s of streaming", time.monotonic() - started)
    except BrokenPipeError:
        counts["closed"] = 1
        _silence_stdout()
        log.info("output closed by the reader; stopping")
    except KeyboardInterrupt:
        counts["interrupted"] = 1
        log.info("interrupted; every finished batch was written")
    counts["seconds"] = time.monotonic() - started
    return counts


def summarize(counts: Counter, labels: tuple[str, str]) -> str:
    """One-line summary of a stream's counts."""
    seconds = counts["seconds"] or 1e-9
    text = (
        f"{counts['lines']} lines: {counts[labels[1]]} {labels[1]}, {counts[labels[0]]} {labels[0]}, "
        f"{counts['error']} errors, {counts['truncated']} truncated in {seconds:.1f} s "
        f"({counts['lines'] / seconds:.1f} lines/s)"
    )
    if counts["interrupted"]:
        text += "; interrupted"
    if counts["closed"]:
        text += "; output closed early"
    return text


def interact(classifier, out=None) -> int:
    """Terminal loop: print the label and score of each typed line; `q` (or Ctrl-D / Ctrl-C) quits."""
    out = out or sys.stdout
    print("Type a message to classify; q quits.", file=sys.stderr)
    while True:
        try:
            sys.stderr.write("> ")
            sys.stderr.flush()
            text = input()
        except (EOFError, KeyboardInterrupt):
            print(file=sys.stderr)
            return 0
        if text.strip() == "q":
            return 0
        if not text.strip():
            continue
        result = classifier.score([text])[0]
        mark = "  (truncated)" if result.truncated else ""
        print(f"{result.label} {result.score:.3f}{mark}", file=out, flush=True)


def _silence_stdout() -> None:
    # Point fd 1 at /dev/null so the interpreter's final flush cannot raise BrokenPipeError again.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
