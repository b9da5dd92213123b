"""Exception hierarchy: every error subclasses a builtin so callers can catch what they expect."""

from __future__ import annotations

import math
from typing import Any

__all__ = [
    "ArtifactError",
    "BackendUnavailableError",
    "EmptyInputError",
    "ModelMismatchError",
    "OysterError",
    "SiteError",
    "UnknownModelError",
    "UnsafeBindingError",
    "WidthMismatchError",
    "require_finite",
]


class OysterError(Exception):
    """Base class of every error raised by oyster_steer."""


class SiteError(OysterError, ValueError):
    """A hook-site name is malformed, unknown, or out of the model's layer range."""


class WidthMismatchError(OysterError, ValueError):
    """A tensor's last dimension does not match the model's residual width."""


class EmptyInputError(OysterError, ValueError):
    """A prompt list, data set or tensor that must be non-empty is empty."""


class UnknownModelError(OysterError, ValueError):
    """A model name is neither a known embedded model nor a local directory."""


class ArtifactError(OysterError, ValueError):
    """A saved probe, vector or control pack is malformed or of an unsupported format."""


class ModelMismatchError(ArtifactError):
    """An artifact was made for another model (fingerprint, width or layer count differ)."""


class BackendUnavailableError(OysterError, ImportError):
    """An optional backend (TransformerLens, nnsight, plotly) is not installed."""


def require_finite(value: Any, what: str, error: type[Exception] = ValueError) -> None:
    """Raise ``error`` naming ``what`` when a number or tensor holds NaN or an infinity."""
    import torch

    if isinstance(value, torch.Tensor):
        ok = not value.is_floating_point() or bool(torch.isfinite(value).all())
    else:
        ok = math.isfinite(float(value))
    if not ok:
        raise error(
            f"{what} holds NaN or an infinity: pass finite numbers (re-create or retrain it)"
        )


class UnsafeBindingError(OysterError, ValueError):
    """A control plan binds an anti-refusal vector to the strategy chosen for malicious users."""
