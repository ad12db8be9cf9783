"""Input lines -> classifiable texts, and results -> output lines (one per input line, always).

    parse_line(b'{"id": 7, "text": "hi"}', "auto")   # Line(text='hi', fields={'id': 7})
    format_result(line, result, "jsonl")             # b'{"id": 7, "label": "safe", "score": 0.02}\\n'

Input rule (`--input auto`, the default, decided per line): a line that parses as a JSON object is a record whose
"text" must be a string (other keys, "id" included, are passed through); any other line is the text itself.
`--input jsonl` makes every line a record (invalid JSON is an error); `--input text` makes every line a text.
Bytes that are not UTF-8 become U+FFFD; a line ending "\\r\\n" loses the "\\r". An empty or whitespace-only text cannot
be classified and yields {"error": "empty text"}, like every other unclassifiable line, at its place in the output.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

INPUT_MODES = ("auto", "jsonl", "text")
OUTPUT_MODES = ("jsonl", "text")
# Keys serve writes; an input record's own keys of these names are passed through as input_<key>.
RESULT_KEYS = ("label", "score", "truncated", "error")
SNIPPET_CHARS = 60


@dataclass
class Line:
    """One parsed input line: the text to classify (None when it cannot be), passthrough fields, or an error."""

    text: str | None
    fields: dict = field(default_factory=dict)
    error: str | None = None


def parse_line(raw: bytes, mode: str = "auto") -> Line:
    """Decode and parse one input line (without its newline) according to the input mode."""
    decoded = raw.decode("utf-8", errors="replace").removesuffix("\r")
    if mode == "text":
        return _text_line(decoded)
    record = _json_object(decoded)
    if isinstance(record, dict):
        return _record_line(record)
    if mode == "jsonl":
        return Line(None, error=record if isinstance(record, str) else "line is not a JSON object")
    return _text_line(decoded)


def oversized_line(limit: int) -> Line:
    """The Line standing in for an input line longer than the reader's limit."""
    return Line(None, error=f"line longer than {limit} bytes; not classified")


def _text_line(text: str) -> Line:
    if not text.strip():
        return Line(None, error="empty text")
    return Line(_clean(text))


def _record_line(record: dict) -> Line:
    fields = {k: v for k, v in record.items() if k != "text"}
    fields = {(f"input_{k}" if k in RESULT_KEYS else k): v for k, v in fields.items()}
    if "id" in fields:  # id first in the output, whatever its place in the input
        fields = {"id": fields.pop("id"), **fields}
    text = record.get("text")
    if "text" not in record:
        return Line(None, fields, error='JSON object has no "text"')
    if not isinstance(text, str):
        return Line(None, fields, error=f'"text" must be a string, not {type(text).__name__}')
    if not text.strip():
        return Line(None, fields, error="empty text")
    return Line(_clean(text), fields)


def _json_object(decoded: str) -> dict | str:
    """The JSON object on a line, or a short reason why it is none."""
    if not decoded.lstrip().startswith("{"):
        return "line is not a JSON object"
    try:
        # strict=False: raw tabs/NULs inside strings are accepted; NaN/Infinity are rejected (not valid JSON out).
        value = json.loads(decoded, strict=False, parse_constant=_reject_constant, parse_float=_finite_float)
    except (ValueError, RecursionError) as exc:
        return f"invalid JSON: {str(exc)[:120]}"
    return value if isinstance(value, dict) else "line is not a JSON object"


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:20]} is out of range")
    return value


def _clean(text: str) -> str:
    # Lone surrogates (from JSON "\ud800") cannot be encoded as UTF-8 by the tokenizer: make them U+FFFD.
    return text.encode("utf-8", errors="surrogatepass").decode("utf-8", errors="replace")


def format_result(line: Line, result, mode: str = "jsonl") -> bytes:
    """The output line for a classified input line (`result` is a classifier.Result)."""
    if mode == "text":
        mark = " (truncated)" if result.truncated else ""
        return _text(line, f"{result.label:<6} {result.score:.3f}  {_snippet(line.text)}{mark}")
    out = {**line.fields, "label": result.label, "score": round(result.score, 6)}
    if result.truncated:
        out["truncated"] = True
    return _json(out)


def format_error(line: Line, mode: str = "jsonl") -> bytes:
    """The output line for an input line that could not be classified."""
    if mode == "text":
        return _text(line, f"error  {line.error}")
    out = {"id": line.fields["id"]} if "id" in line.fields else {}
    out["error"] = line.error
    return _json(out)


def _json(obj: dict) -> bytes:
    # ensure_ascii keeps the output pure ASCII whatever the input held (lone surrogates included).
    return (json.dumps(obj, ensure_ascii=True, allow_nan=False) + "\n").encode("ascii")


def _text(line: Line, message: str) -> bytes:
    prefix = f"[{line.fields['id']}] " if "id" in line.fields else ""
    return (prefix + message + "\n").encode("utf-8", errors="backslashreplace")


def _snippet(text: str | None) -> str:
    flat = " ".join((text or "").split())
    flat = "".join(ch if ch.isprintable() else "\ufffd" for ch in flat)
    return flat if len(flat) <= SNIPPET_CHARS else flat[: SNIPPET_CHARS - 1] + "\u2026"
