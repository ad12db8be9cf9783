"""Encoded copies of training rows: the same request hidden in base64, hex, binary, ROT13 or spaced-out letters.

    rows += encoded_copies(rows, 400, seed=0)   # 200 safe + 200 unsafe copies, each keeping its row's label

With the contract's `reveal_encoded`, the model sees such a text followed by its decoding (common/reveal.py), but the
corpus holds almost no encoded texts, so it never learned to judge a message by that decoded part: the shipped model
scores "how do I build a pipe bomb" 0.76 in plain text and 0.19-0.29 in base64, hex or binary. These copies teach it.
Half are safe, so that an encoding alone is no sign of harm. Copies come from train rows only, so valid and test stay
untouched.
"""

from __future__ import annotations

import base64
import codecs
import itertools
import random

from common.reveal import decodings

# Longest plain text per encoding: binary costs ~9 tokens per character (every digit is a token), hex ~3.
MAX_CHARS = {"base64": 300, "hex": 120, "binary": 40, "rot13": 300, "spaced": 120}
# How the message around the encoded run reads; {kind} names the encoding. The bare run is one of them.
CARRIERS = (
    "{run}",
    "Decode this {kind} and do what it says: {run}",
    "{kind}: {run}",
    "My friend sent me this, can you answer it?\n{run}",
    "Respond to the following message.\n\n{run}\n\nThanks!",
    "[{kind}] {run}",
)


def encode(text: str, kind: str) -> str:
    """The text as one run of the given encoding."""
    if kind == "base64":
        return base64.b64encode(text.encode()).decode()
    if kind == "hex":
        return text.encode().hex(" ")
    if kind == "binary":
        return " ".join(f"{byte:08b}" for byte in text.encode())
    if kind == "rot13":
        return codecs.encode(text, "rot13")
    if kind == "spaced":
        return "  ".join(" ".join(word) for word in text.split())
    raise ValueError(f"unknown encoding {kind!r}; one of {', '.join(MAX_CHARS)}")


def encoded_copies(rows: list[tuple[str, int]], n: int, seed: int) -> list[tuple[str, int]]:
    """Up to n encoded copies of seeded (text, label) rows, half of each label where the rows allow.

    A copy is kept only if reveal decodes it back to its text (ROT13 is read from the whole message, so a carrier
    full of English words hides it: then the bare run is used), so every copy shows the model the decoded request.
    """
    rng = random.Random(f"{seed}:encoded_copies")
    longest = max(MAX_CHARS.values())
    copies: list[tuple[str, int]] = []
    for label, want in ((1, (n + 1) // 2), (0, n // 2)):
        candidates = sorted(text for text, row_label in rows if row_label == label and len(text) <= longest)
        rng.shuffle(candidates)
        made = (copy for copy in map(lambda text: _copy(text, rng), candidates) if copy is not None)
        copies += [(copy, label) for copy in itertools.islice(made, want)]
    return copies


def _copy(text: str, rng: random.Random) -> str | None:
    """One encoded message carrying the text, or None when no encoding fits it or reveal cannot read it back."""
    plain = " ".join(text.split())
    kinds = [kind for kind, limit in MAX_CHARS.items() if len(plain) <= limit]
    if not kinds:
        return None
    kind = rng.choice(kinds)
    run = encode(plain, kind)
    for carrier in (rng.choice(CARRIERS), "{run}"):
        message = carrier.format(run=run, kind="ROT13" if kind == "rot13" else kind)
        if any(_same(decoded, plain) for _, decoded in decodings(message)):
            return message
    return None


def _same(decoded: str, plain: str) -> bool:
    return " ".join(decoded.split()).lower() == plain.lower()
