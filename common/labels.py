"""Label words that labelled data spells its two classes with (matched casefolded): 0 = safe, 1 = unsafe.

prep reads raw sources with them (plus --label-map); eval reads labelled files with them (plus the contract's words).
"""

from __future__ import annotations

LABEL_WORDS: dict[str, int] = {
    **dict.fromkeys(["0", "false", "no", "safe", "benign", "harmless", "legit", "legitimate", "ok", "normal"], 0),
    **dict.fromkeys(["clean", "allowed", "negative_class", "non-injection", "not_injection"], 0),
    **dict.fromkeys(["1", "true", "yes", "unsafe", "malicious", "harmful", "injection", "prompt_injection"], 1),
    **dict.fromkeys(["jailbreak", "attack", "adversarial", "toxic", "blocked", "unsafe_prompt"], 1),
}
