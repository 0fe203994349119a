"""Turn polarity pairs into token ids exactly as the benchmark scores them.

Instruct models: the prompt goes through the tokenizer's chat template (with the generation
prompt), and each completion is followed by the template's end-of-turn token, which is
scored. Base models: the prompt is followed by a newline and each completion by EOS.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from transformers import PreTrainedTokenizerBase

from steer_pu.errors import SteerPuError
from steer_pu.suite.concepts import Pair

_PROBE = "\x00steer-pu-probe\x00"


@dataclass(frozen=True)
class EncodedPair:
    id: str
    prompt_ids: tuple[int, ...]
    pos_ids: tuple[int, ...]
    neg_ids: tuple[int, ...]


@dataclass(frozen=True)
class PromptFormat:
    """How prompts and completions become text for one tokenizer."""

    tokenizer: PreTrainedTokenizerBase
    use_chat_template: bool
    system_prompt: str | None = None  # prompting-style control methods set this

    def prompt_text(self, prompt: str) -> str:
        if not self.use_chat_template:
            prefix = f"{self.system_prompt}\n\n" if self.system_prompt else ""
            return f"{prefix}{prompt}\n"
        messages = [{"role": "user", "content": prompt}]
        if self.system_prompt:
            messages.insert(0, {"role": "system", "content": self.system_prompt})
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    @cached_property
    def end_of_turn(self) -> str:
        """The text that closes an assistant turn (``<|im_end|>``, ``<end_of_turn>``, EOS)."""
        tok = self.tokenizer
        if self.use_chat_template:
            rendered = tok.apply_chat_template(
                [{"role": "user", "content": "q"}, {"role": "assistant", "content": _PROBE}], tokenize=False
            )
            tail = rendered.split(_PROBE, 1)[-1].strip()
            if tail:
                return tail
        if tok.eos_token is None:
            raise SteerPuError(f"tokenizer {tok.name_or_path}: no end-of-turn or EOS token to close completions")
        return tok.eos_token

    @cached_property
    def end_of_turn_tokens(self) -> int:
        """How many tokens :attr:`end_of_turn` adds to a completion (1 for a special token)."""
        return len(self.tokenizer(self.end_of_turn, add_special_tokens=False).input_ids)

    def encode(self, pair: Pair) -> EncodedPair:
        tok = self.tokenizer
        prompt_ids = tok(self.prompt_text(pair.prompt), add_special_tokens=not self.use_chat_template).input_ids
        eot = self.end_of_turn
        pos = tok(pair.positive + eot, add_special_tokens=False).input_ids
        neg = tok(pair.negative + eot, add_special_tokens=False).input_ids
        return EncodedPair(pair.id, tuple(prompt_ids), tuple(pos), tuple(neg))

    def encode_all(self, pairs: list[Pair]) -> list[EncodedPair]:
        return [self.encode(pair) for pair in pairs]
