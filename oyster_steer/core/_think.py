"""Think markers and reasoning spans on the host: which tokens are prompt, thinking or answer.

The device-side tracker that hooks use is ``oyster_steer.control._spans``; this module holds what
lower layers (token traces, figures) need too: the marker ids and a plain-python span function.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["ANSWER", "PROMPT", "SPANS", "THINKING", "ThinkMarkers", "host_spans"]

SPANS = ("prompt", "thinking", "answer")
PROMPT, THINKING, ANSWER = 0, 1, 2


@dataclass(frozen=True)
class ThinkMarkers:
    """Token ids that open and close a thinking block (each a single token).

    Attributes:
        open: ids of ``<think>``-like tokens; close: ids of ``</think>``-like tokens.

    Example:
        >>> ThinkMarkers(open=(151667,), close=(151668,))  # Qwen3
        ThinkMarkers(open=(151667,), close=(151668,))
    """

    open: tuple[int, ...]
    close: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "open", tuple(int(i) for i in _ids(self.open)))
        object.__setattr__(self, "close", tuple(int(i) for i in _ids(self.close)))
        if not self.open or not self.close or set(self.open) & set(self.close):
            raise ValueError(
                f"think markers open={self.open} close={self.close} must each name at least one "
                "token id and share none: pass the ids of '<think>' and '</think>'"
            )

    @classmethod
    def from_tokenizer(
        cls, tokenizer: Any, open: str = "<think>", close: str = "</think>"
    ) -> ThinkMarkers | None:
        """The markers of ``tokenizer`` when both are single tokens of its vocabulary, else None.

        Qwen3, DeepSeek-R1 distills and SmolLM3 have ``<think>`` and ``</think>`` as added tokens.
        """
        vocab = tokenizer.get_vocab()
        if open in vocab and close in vocab:
            return cls((vocab[open],), (vocab[close],))
        return None


def _ids(value: int | Iterable[int]) -> tuple[int, ...]:
    return (value,) if isinstance(value, int) else tuple(value)


def host_spans(ids: Sequence[int], n_prompt: int, markers: ThinkMarkers | None) -> list[int]:
    """The span code of each token of one sequence, on the host (for traces and figures).

    ``ids``: prompt then generated ids; ``n_prompt``: how many are the prompt.

    Example:
        >>> host_spans([5, 1, 7, 2, 9], 1, ThinkMarkers(1, 2))
        [0, 1, 1, 1, 2]
    """
    opens = set(markers.open) if markers else set()
    closes = set(markers.close) if markers else set()
    state, out = PROMPT, []
    for i, t in enumerate(ids):
        marker = t in opens or t in closes
        if i < n_prompt:
            out.append(PROMPT)
        else:
            out.append(THINKING if marker or state == THINKING else ANSWER)
        if t in opens:
            state = THINKING
        elif t in closes:
            state = ANSWER
    return out
