"""A content-addressed cache of captures, so sweeps and probe training capture each prompt once.

Rows are keyed by prompt text under ``root/{weights id}/{positions}-{chat}-{sites hash}/`` (the
hash of every weight, so a fine-tune never reads its base model's rows) and
stored as ordinary :class:`~oyster_steer.Activations` shards. Asking for prompts that are
partly cached captures only the missing ones, in length-sorted chunks, writing a shard after each
chunk so an interrupted run loses at most one chunk.
"""

from __future__ import annotations

import hashlib
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import cast

import torch
from safetensors import safe_open

from ..core._errors import ArtifactError
from ..core._sites import Site, resolve_sites
from ..models._model import OysterModel
from ._capture import Activations, Pool, capture, resolve_pool

__all__ = ["DEFAULT_CACHE", "cached_capture"]

DEFAULT_CACHE = Path("runs") / "capture-cache"


def _cache_dir(
    root: Path, model: OysterModel, sites: Sequence[Site], positions: str, chat: bool
) -> Path:
    names = ",".join(s.name for s in sites)
    tag = hashlib.sha256(names.encode()).hexdigest()[:10]
    return root / model.weights_id / f"{positions}-chat{int(chat)}-{tag}"


def _wider_dirs(directory: Path, sites: Sequence[Site], wanted: set[str]) -> list[Path]:
    """Other cache directories of the same model, pool and chat flag whose shards hold every one
    of ``sites`` (captured with more sites): they serve rows a narrower request lacks (read only).
    """
    if not wanted or not directory.parent.is_dir():
        return []
    prefix, names = directory.name.rsplit("-", 1)[0] + "-", {s.name for s in sites}
    found = []
    for other in sorted(directory.parent.glob(prefix + "*")):
        shard = next(iter(sorted(other.glob("shard-*.safetensors"))), None)
        if other == directory or shard is None:
            continue
        try:
            with safe_open(str(shard), framework="pt") as f:
                held = {k[5:] for k in f.keys() if k.startswith("acts/")}  # noqa: SIM118
        except Exception:  # noqa: BLE001 -- a broken shard: that directory's own reads handle it
            continue
        if names <= held:
            found.append(other)
    return found


def _load_index(directory: Path, sites: Sequence[Site]) -> dict[str, torch.Tensor]:
    """text -> (n_sites, d) row from every shard in ``directory``.

    A shard that does not read back (truncated by a kill or a full disk) is deleted with a
    warning; its prompts are simply captured again.
    """
    index: dict[str, torch.Tensor] = {}
    for path in sorted(directory.glob("shard-*.safetensors")):
        try:
            part = Activations.load(path)
        except ArtifactError as err:
            warnings.warn(
                f"capture cache: shard {str(path)!r} is unreadable ({err}); deleted, its prompts are captured again",
                UserWarning,
                stacklevel=3,
            )
            path.unlink(missing_ok=True)
            continue
        stacked = part.stack([s.name for s in sites])  # (N, S, d)
        index.update(zip(part.prompts, stacked, strict=True))
    return index


def cached_capture(
    model: OysterModel,
    texts: Sequence[str],
    sites: str | Sequence[str | Site] = "resid_post",
    *,
    pool: Pool | None = None,
    positions: Pool | None = None,
    chat: bool = True,
    root: str | Path = DEFAULT_CACHE,
    chunk: int = 256,
    batch_size: int = 16,
    progress: bool = True,
) -> Activations:
    """Capture ``texts`` at ``sites`` (``last`` or ``mean`` positions), reusing cached rows.

    Args:
        model: any backend; rows are shared across backends (same weights, same fingerprint).
        texts: prompts; duplicates are captured once.
        pool: ``"last"`` token (default) or ``"mean"`` over real tokens (one row per prompt).
        positions: deprecated name of ``pool`` (removed in the next release).
        root: cache root (git-ignored ``runs/capture-cache`` by default).
        chunk: prompts per shard written while capturing.

    Returns:
        Activations with one row per text, in the order given.

    Example:
        >>> acts = cached_capture(model, ["Hi!"], "resid_post")  # doctest: +SKIP
    """
    from tqdm.auto import tqdm

    pool = resolve_pool(pool, positions, "cached_capture")
    if pool == "all":
        raise ValueError(
            "cached_capture keeps one row per prompt: use pool='last', 'mean' or 'last+mean'"
        )
    if pool == "last+mean":  # the two cached features side by side: (N, 2d) rows
        kw = dict(chat=chat, root=root, chunk=chunk, batch_size=batch_size, progress=progress)
        last = cached_capture(model, texts, sites, pool="last", **kw)  # type: ignore[arg-type]
        mean = cached_capture(model, texts, sites, pool="mean", **kw)  # type: ignore[arg-type]
        both = {k: torch.cat([v, mean.acts[k]], -1) for k, v in last.acts.items()}
        captured = int(last.meta["captured_now"]) + int(mean.meta["captured_now"])
        return replace(
            last, acts=both, positions=pool, meta={**last.meta, "captured_now": str(captured)}
        )
    resolved = sorted(resolve_sites(sites, model.n_layers), key=lambda s: s.order)
    directory = _cache_dir(Path(root), model, resolved, pool, chat)
    index = _load_index(directory, resolved) if directory.is_dir() else {}
    for other in _wider_dirs(directory, resolved, set(texts) - set(index)):
        index.update({t: r for t, r in _load_index(other, resolved).items() if t not in index})
    missing = sorted({t for t in texts if t not in index}, key=len)  # similar lengths per chunk
    with tqdm(
        total=len(missing), desc="capture", unit="prompt", disable=not progress or not missing
    ) as bar:
        for start in range(0, len(missing), chunk):
            batch = missing[start : start + chunk]
            part = cast(
                Activations,
                capture(
                    model,
                    batch,
                    resolved,
                    pool=pool,
                    chat=chat,
                    batch_size=batch_size,
                    progress=False,
                ),
            )
            _save_shard(part, directory / f"shard-{time.time_ns()}.safetensors")
            index.update(zip(part.prompts, part.stack([s.name for s in resolved]), strict=True))
            bar.update(len(part))
    rows = (
        torch.stack([index[t] for t in texts])
        if texts
        else torch.zeros(0, len(resolved), model.d_model)
    )  # (N, S, d)
    meta = {
        "model_name": model.name,
        "model_fingerprint": model.fingerprint,
        "n_layers": str(model.n_layers),
        "chat": str(chat),
        "captured_now": str(len(missing)),
    }
    return Activations(
        acts={s.name: rows[:, i].contiguous() for i, s in enumerate(resolved)},
        prompts=list(texts),
        token_ids=torch.zeros(0, dtype=torch.long),
        token_offsets=torch.zeros(len(texts) + 1, dtype=torch.long),
        positions=pool,
        meta=meta,
    )


def _save_shard(part: Activations, path: Path) -> None:
    """Write a shard under a temporary name, then rename it: readers never see half a shard."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    part.save(tmp)
    os.replace(tmp, path)
