"""Wiring into vLLM's V1 model runner (``GPUModelRunner``, which ``CPUModelRunner`` extends).

Five methods are wrapped, each keeping the original's behaviour:

* ``load_model``: after the model is built, if the model directory holds ``control.safetensors``
  (``oyster-steer export --allow-conditional`` writes it), load the plan and install its hooks;
* ``_model_forward`` (a real step): fill the per-token inputs from the runner's host-side batch
  (request order, ``query_start_loc``, prompt lengths, computed tokens) before the forward pass,
  and copy the decisions latched in the step off the device after it;
* ``_dummy_run`` (profiling, warm-up, CUDA-graph capture): neutral per-token inputs, so the
  captured graph contains the plan's ops but no request is touched;
* ``_on_request_state_removed``: free the request's slot;
* ``sample_tokens``: emit the decision log (by then the step's results are on the host anyway).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ...control import load_plan
from ._hooks import install_hooks
from ._state import LOGGER, POOLED_READS, PlanState

__all__ = ["CONTROL_NAME", "DECISIONS_ENV", "PLAN_ENV", "patch_runner"]

CONTROL_NAME = "control.safetensors"
PLAN_ENV = "OYSTER_STEER_PLAN"  # a control pack to serve instead of <model>/control.safetensors; "off" disables
DECISIONS_ENV = "OYSTER_STEER_DECISIONS"  # append one JSON line per decided request to this file

_PATCHED = False


def _logger() -> Any:
    import logging

    return logging.getLogger(LOGGER)


def plan_path(model_dir: str) -> Path | None:
    """The control pack to serve with ``model_dir``, or None (a plain or fully baked model)."""
    env = os.environ.get(PLAN_ENV, "")
    if env.lower() == "off":
        return None
    if env:
        path = Path(env)
        if not path.is_file():
            raise FileNotFoundError(f"{PLAN_ENV}={env} is not a file: point it at a control pack")
        return path
    path = Path(model_dir) / CONTROL_NAME
    return path if path.is_file() else None


def _install(runner: Any) -> None:
    import torch

    model_dir = runner.model_config.model
    path = plan_path(model_dir)
    runner._osteer = None
    if path is None:
        return
    if runner.parallel_config.pipeline_parallel_size > 1:
        raise ValueError(
            "pipeline parallel serving of a probe-gated plan is not supported: the read and the "
            "writes may sit on different ranks; use tensor parallel or pipeline_parallel_size=1"
        )
    hf = runner.model_config.hf_text_config
    plan = load_plan(path)
    n_layers, d_model = int(hf.num_hidden_layers), int(hf.hidden_size)
    if int(plan.identity.get("n_layers", n_layers)) != n_layers:
        raise ValueError(
            f"the control pack is for a model of {plan.identity['n_layers']} layers but the served "
            f"model has {n_layers}: serve the pack with the model it was exported with"
        )
    if plan.read in POOLED_READS and getattr(runner.cache_config, "enable_prefix_caching", False):
        raise ValueError(
            f"the plan reads read={plan.read!r} (the mean over every prompt token), but prefix "
            "caching skips the cached prompt tokens' forward pass: start vLLM with "
            "enable_prefix_caching=False (--no-enable-prefix-caching)"
        )
    sched = runner.scheduler_config
    state = PlanState(
        plan,
        n_layers=n_layers,
        d_model=d_model,
        device=torch.device(runner.device),
        dtype=runner.model_config.dtype,
        max_tokens=int(getattr(runner, "max_num_tokens", sched.max_num_batched_tokens)) + 64,
        max_slots=2 * int(sched.max_num_seqs),
    )
    served: Any = state  # the runner's bookkeeping rides on the state object
    served.handles = install_hooks(runner.model, state)
    served.pending = []
    served.decisions_file = os.environ.get(DECISIONS_ENV) or None
    runner._osteer = state
    _logger().info(
        "oyster_steer: serving control plan %s (probe at %s, strategies %s, %d steered sites)",
        path,
        state.read_site.name,
        ",".join(state.strategies),
        len(state.sites),
    )


def _flush(state: Any) -> None:
    pending, state.pending = state.pending, []
    log = _logger()
    for item in pending:
        for rec in state.records(item):
            log.info("oyster_steer decision %s", json.dumps(rec))
            if state.decisions_file:
                with open(state.decisions_file, "a") as fh:
                    fh.write(json.dumps(rec) + "\n")


def patch_runner() -> None:
    """Wrap the model runner's methods once per process (the plugin's ``register``)."""
    global _PATCHED
    if _PATCHED:
        return
    from vllm.v1.worker import gpu_model_runner

    classes = [gpu_model_runner.GPUModelRunner]
    try:
        from vllm.v1.worker import cpu_model_runner

        classes.append(cpu_model_runner.CPUModelRunner)
    except Exception:  # noqa: BLE001 - a build without the CPU runner
        pass
    for cls in classes:
        if "load_model" in cls.__dict__:
            cls.load_model = _wrap_load(cls.__dict__["load_model"])
    base = gpu_model_runner.GPUModelRunner
    base._model_forward = _wrap_forward(base._model_forward)
    base._dummy_run = _wrap_dummy(base._dummy_run)
    base._on_request_state_removed = _wrap_removed(base._on_request_state_removed)
    base.sample_tokens = _wrap_sample(base.sample_tokens)
    _PATCHED = True


def _wrap_load(orig: Any) -> Any:
    def load_model(self: Any, *args: Any, **kwargs: Any) -> Any:
        out = orig(self, *args, **kwargs)
        _install(self)
        return out

    return load_model


def _wrap_forward(orig: Any) -> Any:
    def _model_forward(self: Any, *args: Any, **kwargs: Any) -> Any:
        state = getattr(self, "_osteer", None)
        if state is None:
            return orig(self, *args, **kwargs)
        batch = self.input_batch
        n = batch.num_reqs
        deciding = state.prepare(
            list(batch.req_ids[:n]),
            self.query_start_loc.np,
            batch.num_prompt_tokens,
            batch.num_computed_tokens_cpu,
        )
        try:
            return orig(self, *args, **kwargs)
        finally:
            pending = state.collect(deciding)
            if pending is not None:
                state.pending.append(pending)

    return _model_forward


def _wrap_dummy(orig: Any) -> Any:
    def _dummy_run(self: Any, *args: Any, **kwargs: Any) -> Any:
        state = getattr(self, "_osteer", None)
        if state is not None:
            state.neutral()
        return orig(self, *args, **kwargs)

    return _dummy_run


def _wrap_removed(orig: Any) -> Any:
    def _on_request_state_removed(self: Any, req_id: str, *args: Any, **kwargs: Any) -> Any:
        state = getattr(self, "_osteer", None)
        if state is not None:
            state.release(req_id)
        return orig(self, req_id, *args, **kwargs)

    return _on_request_state_removed


def _wrap_sample(orig: Any) -> Any:
    def sample_tokens(self: Any, *args: Any, **kwargs: Any) -> Any:
        out = orig(self, *args, **kwargs)
        state = getattr(self, "_osteer", None)
        if state is not None and state.pending:
            _flush(state)
        return out

    return sample_tokens
