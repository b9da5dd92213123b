"""oyster_steer: probe-gated steering of language models toward constructive safety."""

from __future__ import annotations

from ._errors import (
    ArtifactError,
    BackendUnavailableError,
    EmptyInputError,
    ModelMismatchError,
    OysterError,
    SiteError,
    UnknownModelError,
    WidthMismatchError,
)
from ._models import DEFAULT_MODEL, OysterModel, from_hf, load_model
from ._sites import SITE_KINDS, Site, parse_site, resolve_site

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_MODEL",
    "SITE_KINDS",
    "ArtifactError",
    "BackendUnavailableError",
    "EmptyInputError",
    "ModelMismatchError",
    "OysterError",
    "OysterModel",
    "Site",
    "SiteError",
    "UnknownModelError",
    "WidthMismatchError",
    "from_hf",
    "load_model",
    "parse_site",
    "resolve_site",
]
