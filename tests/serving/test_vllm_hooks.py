"""The vLLM plugin's torch hooks (``oyster_steer.serving.vllm._hooks``) with a recording state:
reads see, and writes shift, the residual stream ``hidden + residual`` in op order."""

from __future__ import annotations

import torch

from oyster_steer.serving.vllm._hooks import _post, _pre

N, D = 3, 4
OPS = [(0, "read", (True, ("risk",))), (1, "write", 0), (1, "write", 1)]


class _Recorder:
    """Reads are recorded; write ``index`` adds ``(index + 1) * x`` to the value ``x`` it sees."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, torch.Tensor, object]] = []

    def read(self, x: torch.Tensor, gate: bool, monitors: tuple[str, ...]) -> None:
        self.calls.append(("read", x.clone(), (gate, monitors)))

    def delta(self, x: torch.Tensor, index: int) -> torch.Tensor:
        self.calls.append(("delta", x.clone(), index))
        return (index + 1) * x


def _inputs() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(N, D, generator=g), torch.randn(N, D, generator=g)


def _check_calls(state: _Recorder, total: torch.Tensor) -> torch.Tensor:
    """The calls for OPS on the stream value ``total``; the new ``hidden`` minus the old one."""
    (r, x0, meta), (d0, x1, i0), (d1, x2, i1) = state.calls
    assert (r, meta, d0, i0, d1, i1) == ("read", (True, ("risk",)), "delta", 0, "delta", 1)
    assert torch.equal(x0, total) and torch.equal(x1, total)  # the read comes first
    assert torch.allclose(x2, 2 * total)  # the second write sees the first one's shift
    return total + 2 * (2 * total)  # both deltas: total, then 2 * (2 * total)


def test_post_hook_of_a_decoder_layer_shifts_hidden_and_keeps_the_rest():
    hidden, residual = _inputs()
    state = _Recorder()
    out = _post(state, OPS)(torch.nn.Identity(), (), (hidden, residual, "extra"))
    shift = _check_calls(state, hidden + residual)
    assert torch.allclose(out[0], hidden + shift) and out[1] is residual and out[2] == "extra"


def test_post_hook_of_a_sublayer_returns_the_shifted_tensor():
    hidden, _ = _inputs()
    state = _Recorder()
    out = _post(state, OPS)(torch.nn.Identity(), (), hidden)
    assert torch.allclose(out, hidden + _check_calls(state, hidden))


def test_hooks_that_only_read_leave_the_module_alone():
    hidden, residual = _inputs()
    state = _Recorder()
    reads = OPS[:1]
    assert _post(state, reads)(torch.nn.Identity(), (), (hidden, residual)) is None
    assert _pre(state, reads, False)(torch.nn.Identity(), (0, hidden, residual), {}) is None
    assert len(state.calls) == 2 and torch.equal(state.calls[1][1], hidden + residual)


def test_pre_hook_of_a_decoder_layer_takes_hidden_from_args_or_kwargs():
    hidden, residual = _inputs()
    positions = torch.arange(N)
    state = _Recorder()
    args, kwargs = _pre(state, OPS, False)(torch.nn.Identity(), (positions, hidden, residual), {})
    shift = _check_calls(state, hidden + residual)
    assert args[0] is positions and args[2] is residual and kwargs == {}
    assert torch.allclose(args[1], hidden + shift)
    state = _Recorder()
    given = {"hidden_states": hidden, "residual": residual}
    args, kwargs = _pre(state, OPS, False)(torch.nn.Identity(), (positions,), dict(given))
    assert args == (positions,) and kwargs["residual"] is residual
    assert torch.allclose(kwargs["hidden_states"], hidden + _check_calls(state, hidden + residual))


def test_pre_hook_of_a_fused_add_norm_reads_hidden_and_residual_first():
    hidden, residual = _inputs()
    state = _Recorder()
    args, _ = _pre(state, OPS, True)(torch.nn.Identity(), (hidden, residual), {})
    assert torch.allclose(args[0], hidden + _check_calls(state, hidden + residual))
    assert args[1] is residual
