"""The probe-gated control plan inside vLLM: a ``vllm.general_plugins`` plugin.

Installed with oyster_steer (entry point ``oyster_steer = oyster_steer.serving.vllm:register``),
vLLM loads it in every process. When the served model directory holds ``control.safetensors``
(``oyster-steer export --plan ... --allow-conditional`` writes it beside the baked checkpoint),
the plan runs inside the engine: the probe reads each request's prompt during prefill (its last
token, the mean over its tokens, or both: ``read="last"``, ``"mean"``, ``"last+mean"``; the mean
reads need ``--no-enable-prefix-caching``), the policy decides, the gates are latched for that request's decode steps, and each
steered site adds its fused write, per token, under continuous batching and chunked prefill.
Without that file the plugin does nothing.

Each decision is logged by the worker as one line ``oyster_steer decision {json}`` (logger
``vllm.oyster_steer``, INFO) with the request id, intent, strategy, posterior, gates, expected
utilities and monitor posteriors; ``OYSTER_STEER_DECISIONS=/path/file.jsonl`` also appends them
to a file. ``OYSTER_STEER_PLAN=/path/pack.safetensors`` serves another pack, ``=off`` none.
See docs/serving.md.
"""

from __future__ import annotations

from ._runner import patch_runner

__all__ = ["register"]


def register() -> None:
    """vLLM's plugin hook: wrap the model runner so that a model's control pack is served."""

    patch_runner()
