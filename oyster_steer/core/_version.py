"""The package version (kept beside the errors so artifacts can record it without a cycle)."""

__version__ = "0.1.0"
