"""The bottom layer: errors, hook-site names, the version and optional-dependency imports.

Imports nothing else from the package; every other layer may import it.
"""

from __future__ import annotations

from ._errors import (
    ArtifactError,
    BackendUnavailableError,
    EmptyInputError,
    ModelMismatchError,
    OysterError,
    SiteError,
    UnknownModelError,
    UnsafeBindingError,
    WidthMismatchError,
)
from ._optional import PIP_EXTRAS, require
from ._sites import SITE_KINDS, Site, parse_site, resolve_site, resolve_sites
from ._version import __version__

__all__ = [
    "PIP_EXTRAS",
    "SITE_KINDS",
    "ArtifactError",
    "BackendUnavailableError",
    "EmptyInputError",
    "ModelMismatchError",
    "OysterError",
    "Site",
    "SiteError",
    "UnknownModelError",
    "UnsafeBindingError",
    "WidthMismatchError",
    "__version__",
    "parse_site",
    "require",
    "resolve_site",
    "resolve_sites",
]
