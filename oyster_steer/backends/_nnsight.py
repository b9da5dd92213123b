"""nnsight backend (0.8): interventions written inside ``trace`` / ``generate`` contexts.

Sites resolve to envoys with the same module paths as the HF backend; a hook reads ``.output``
(or ``.input``) and writes the replacement back, in forward-pass order.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from ..models._arch import hook_point
from . import Hook, HookHandle, _hf, checked_hooks

if TYPE_CHECKING:
    from ..models._model import OysterModel

__all__ = ["add_hooks", "forward", "generate"]


def _envoy(root: Any, path: str) -> Any:
    node = root
    for part in path.split("."):
        node = node[int(part)] if part.isdigit() else getattr(node, part)
    return node


def _apply(model: OysterModel, hooks: Sequence[Hook]) -> None:
    """Run each hook on its envoy inside an open trace, in execution order."""
    for hook in sorted(hooks, key=lambda h: h.site.order):
        point = hook_point(
            model.spec, hook.site, write=hook.write, parallel=model.parallel_residual
        )
        envoy = _envoy(model.native, point.path)
        if point.io == "input":
            value = envoy.input
            new = hook.fn(value)
            if new is not None:
                envoy.input = new
        else:
            value = envoy.output
            tensor = value if isinstance(value, torch.Tensor) else value[0]
            new = hook.fn(tensor)
            if new is not None:
                envoy.output = new if isinstance(value, torch.Tensor) else (new, *value[1:])


def add_hooks(model: OysterModel, hooks: Sequence[Hook]) -> HookHandle:
    """Persistent hooks on the modules nnsight wraps: they fire in every trace and generate."""
    return _hf.add_hooks(model, hooks)


def forward(
    model: OysterModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    hooks: Sequence[Hook] = (),
    *,
    logits: bool = True,
) -> torch.Tensor | None:
    """A traced forward pass; without logits the trace stops after the last hook.

    Without logits and without hooks there is nothing to trace, and a trace stopped at once runs
    no module at all (a control plan patched on the model would never see the pass): the pass
    runs on the wrapped Hugging Face model instead and stops before its LM head.
    """
    if not logits and not hooks:
        return _hf.forward(model, input_ids, attention_mask, logits=False)
    lm, hooks = model.native, checked_hooks(model, hooks)
    with lm.trace(input_ids, attention_mask=attention_mask) as tracer:
        _apply(model, hooks)
        if logits:
            out = lm.output.logits.save()
        else:
            tracer.stop()
    return out if logits else None


def generate(
    model: OysterModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    hooks: Sequence[Hook] = (),
    *,
    max_new_tokens: int = 32,
    **kwargs: Any,
) -> torch.Tensor:
    """Greedy generation; the hooks run at the prompt pass and at every decode step."""
    lm, hooks = model.native, checked_hooks(model, hooks)
    kwargs = {"do_sample": False, "pad_token_id": model.pad_id, **kwargs}
    # Code after an open `tracer.all()` loop never runs, so the result is saved in a second invoke;
    # nnsight warns that the open loop was cut short, which is how it is meant to end.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*was never reached", category=UserWarning)
        with lm.generate(max_new_tokens=max_new_tokens, **kwargs) as tracer:
            with tracer.invoke(input_ids, attention_mask=attention_mask):
                if hooks:  # an empty `tracer.all()` loop never ends
                    for _ in tracer.all():
                        _apply(model, hooks)
            with tracer.invoke():
                out = tracer.result.save()
    return out
