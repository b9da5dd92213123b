"""Checkpoints that older transformers releases load the same way as transformers 5 does.

transformers 5 writes RoPE settings only as ``rope_parameters`` and a tokenizer config whose class
is ``TokenizersBackend``. transformers 4.x reads the top-level ``rope_theta`` (silently using its
default, 10000, when the field is missing: a different model) and cannot resolve that tokenizer
class. :func:`write_legacy_fields` adds what 4.x reads next to what 5 reads; both then load the
same weights, the same RoPE and a tokenizer that encodes the same ids.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["legacy_config", "legacy_tokenizer_config", "write_legacy_fields"]


def legacy_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """``cfg`` (a config.json dict) plus the top-level fields transformers 4.x reads."""
    out = dict(cfg)
    rope = cfg.get("rope_parameters")
    if isinstance(rope, dict) and rope:
        nested = {k: v for k, v in rope.items() if isinstance(v, dict)}
        main = nested.get("full_attention", rope) if nested else rope
        if "rope_theta" in main:
            out.setdefault("rope_theta", main["rope_theta"])
        local = nested.get("sliding_attention")
        if isinstance(local, dict) and "rope_theta" in local:
            out.setdefault("rope_local_base_freq", local["rope_theta"])
        kind = main.get("rope_type", "default")
        if kind != "default":
            scaling = {k: v for k, v in main.items() if k != "rope_theta"}
            out.setdefault("rope_scaling", {**scaling, "type": kind})
        if "partial_rotary_factor" in main:
            out.setdefault("partial_rotary_factor", main["partial_rotary_factor"])
    if "dtype" in cfg:
        out.setdefault("torch_dtype", cfg["dtype"])
    return out


def legacy_tokenizer_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """A tokenizer_config.json dict that transformers 4.x resolves to a fast tokenizer."""
    out = dict(cfg)
    if out.get("tokenizer_class") in (None, "TokenizersBackend"):
        out["tokenizer_class"] = "PreTrainedTokenizerFast"  # loads tokenizer.json as it is
    extra = out.get("extra_special_tokens")
    if isinstance(extra, list):  # 4.x reads a {name: token} dict here
        out.pop("extra_special_tokens")
        out.setdefault("additional_special_tokens", extra)
    return out


def _rewrite(path: Path, fn: Any) -> None:
    data = json.loads(path.read_text())
    new = fn(data)
    if new == data:
        return
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    with os.fdopen(fd, "w") as handle:
        json.dump(new, handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.replace(tmp, path)


def write_legacy_fields(directory: str | Path) -> None:
    """Add the fields older transformers read to a ``save_pretrained`` directory (in place, atomic).

    Example:
        >>> write_legacy_fields("exports/constructive")  # doctest: +SKIP
    """
    root = Path(directory)
    if (root / "config.json").exists():
        _rewrite(root / "config.json", legacy_config)
    if (root / "tokenizer_config.json").exists():
        _rewrite(root / "tokenizer_config.json", legacy_tokenizer_config)
