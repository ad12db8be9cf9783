"""mlx-lm's lm-eval model class, made to score prompts exactly as serve does; registered as `psc-mlxlm`.

Importing this module registers the class with lm-eval. Differences from `mlx_lm.evaluate.MLXLM`:
accepts lm-eval's extra constructor arguments (`device`, `max_batch_size`, ...), loads LoRA adapters
(`adapter_path=`), never applies a chat template itself (the prompt_safety task renders the contract's template),
and tokenizes a rendered contract prompt with the contract's own rules (plain-text user text, head+tail truncation),
so its token ids equal serve's.
"""

from __future__ import annotations

import logging

from lm_eval.api.model import LM
from lm_eval.api.registry import register_model
from mlx_lm.evaluate import MLXLM
from mlx_lm.utils import load

from evalharness.data import resolve_contract

log = logging.getLogger(__name__)
MODEL_NAME = "psc-mlxlm"
_SLOT = "\u2063PSC_EVAL_SLOT\u2063"


@register_model(MODEL_NAME)
class ContractMLXLM(MLXLM):
    """MLXLM with adapters and contract-exact tokenization."""

    def __init__(
        self,
        pretrained: str | None = None,
        path_or_hf_repo: str | None = None,
        adapter_path: str | None = None,
        contract: str | None = None,
        batch_size: int | str = 8,
        max_tokens: int | None = None,
        **_ignored,  # lm-eval passes device, max_batch_size, ... which MLX does not use
    ) -> None:
        LM.__init__(self)
        model = pretrained or path_or_hf_repo
        if not model:
            raise ValueError("pass the model directory: model_args pretrained=DIR")
        self._model, self.tokenizer = load(model, adapter_path=adapter_path or None)
        self.contract = resolve_contract(model, adapter_path, contract)
        self._max_tokens = int(max_tokens) if max_tokens else None
        self._batch_size = int(batch_size) if str(batch_size).isdigit() else 8
        self.use_chat_template = False
        self._sampler = None
        self._before, self._after = self.contract.prompt_text(self.tokenizer, _SLOT).split(_SLOT)
        self._logged = False

    def apply_chat_template(self, chat_history, add_generation_prompt=True) -> str:
        raise ValueError("prompt_safety renders the contract's chat template itself; do not pass --apply_chat_template")

    def _tokenize(self, texts):
        return [tuple(self._encode(t)) for t in texts]

    def _encode(self, text: str) -> list[int]:
        """A rendered contract prompt (+ continuation) -> the contract's ids; other text -> plain encoding."""
        end = text.rfind(self._after)
        if not text.startswith(self._before) or end < len(self._before):
            return self.tokenizer.encode(text, add_special_tokens=False)
        user_text = text[len(self._before) : end]
        # The continuation follows the rendered template: trusted text (label word, no user content).
        tail = text[end + len(self._after) :]
        ids = self.contract.prompt_ids(self.tokenizer, user_text)
        return ids + (self.tokenizer.encode(tail, add_special_tokens=False) if tail else [])

    def loglikelihood(self, requests):
        if requests and not self._logged:
            self._logged = True
            context, continuation = requests[0].args
            ids = self._encode(context + continuation)
            log.info("first request: context=%r continuation=%r", context, continuation)
            log.info("first request tokens (last 12): %s", ids[-12:])
        return super().loglikelihood(requests)
