"""Export: bake vectors and control plans into a patched checkpoint that plain serving engines load."""

from __future__ import annotations

from ._export import ExportManifest, export_patched
from ._routes import ExportError

__all__ = ["ExportError", "ExportManifest", "export_patched"]
