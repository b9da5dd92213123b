"""Residual-stream capture: batched, left-padded, padding-correct, on any backend.

``capture(model, prompts, sites)`` runs the prompts through the model once and keeps, per site,
the activation at the last prompt token (``pool="last"``), the mean over the prompt's real
tokens (``"mean"``) or every real token (``"all"``). The pass stops after the last hooked block.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast, overload

import torch
from tqdm.auto import tqdm

from ..backends import Hook, get_backend
from ..core._errors import EmptyInputError, OysterError, SiteError
from ..core._sites import Site, parse_site, resolve_site, resolve_sites
from ..data import INTENTS, RISKS
from ..models._artifacts import load_artifact, save_artifact
from ..models._model import (
    OysterModel,
    carries_hooks,
    left_pad,
    shared_prefix_length,
    sliding_window,
)

__all__ = ["POOLS", "Activations", "Pool", "ShardedActivations", "capture", "resolve_pool"]

Pool = Literal["last", "mean", "last+mean", "all"]
"""How a prompt's tokens become rows: the last token, the mean of its real tokens, both side by
side (``"last+mean"``: a (2d,) row, ``[last, mean]``), or all of them."""
POOLS: tuple[Pool, ...] = ("last", "mean", "last+mean", "all")
_FORMAT, _VERSION = "oyster_steer.activations", 1


@dataclass
class Activations:
    """Captured activations with the prompts they came from.

    Attributes:
        acts: site name -> (N, d) for ``last``/``mean``, or (total_tokens, d) for ``all``, where
            prompt i owns rows ``token_offsets[i]:token_offsets[i+1]``.
        prompts: the N prompt texts; token_ids: the real (unpadded) token ids of all prompts,
            flattened, split by ``token_offsets`` (N + 1,).
        labels: field name -> (N,) class ids; label_names: field name -> class names.
        positions: the :data:`Pool` used (the file format's name for it).
        meta: model name, fingerprint, layer count, positions, backend, chat flag.
    """

    acts: dict[str, torch.Tensor]
    prompts: list[str]
    token_ids: torch.Tensor
    token_offsets: torch.Tensor
    positions: str = "last"
    labels: dict[str, torch.Tensor] = field(default_factory=dict)
    label_names: dict[str, list[str]] = field(default_factory=dict)
    meta: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.prompts)

    def __getitem__(self, site: str | Site) -> torch.Tensor:
        name = site.name if isinstance(site, Site) else site
        if name not in self.acts:
            name = self._resolve(site)
        if name not in self.acts:
            raise KeyError(
                f"site {name!r} was not captured; captured sites: {', '.join(self.sites)}"
            )
        return self.acts[name]

    def _resolve(self, site: str | Site) -> str:
        """``site``'s canonical name: a negative layer counts from the model's last block."""
        try:
            parsed = parse_site(site)
        except SiteError:
            return site.name if isinstance(site, Site) else site
        if parsed.layer >= 0:
            return parsed.name
        if "n_layers" not in self.meta:
            raise KeyError(
                f"site {parsed.name!r} counts from the last layer, but these activations do not "
                "record the model's layer count (saved by an older version): use the "
                f"non-negative layer, one of {', '.join(self.sites)}"
            )
        return resolve_site(parsed, int(self.meta["n_layers"])).name

    @property
    def sites(self) -> list[str]:
        return list(self.acts)

    def prompt_ids(self, i: int) -> torch.Tensor:
        """The real token ids of prompt ``i``."""
        return self.token_ids[self.token_offsets[i] : self.token_offsets[i + 1]]

    def prompt_acts(self, site: str | Site, i: int) -> torch.Tensor:
        """(T_i, d) activations of prompt ``i`` (``positions="all"`` only)."""
        if self.positions != "all":
            raise ValueError(
                f"per-token activations need positions='all', this capture used {self.positions!r}"
            )
        return self[site][self.token_offsets[i] : self.token_offsets[i + 1]]

    def stack(self, sites: Sequence[str | Site] | None = None) -> torch.Tensor:
        """(N, n_sites, d): several sites side by side."""
        return torch.stack([self[s] for s in (sites or self.sites)], dim=1)

    def save(self, path: str | Path) -> Path:
        """Save to one safetensors file (prompts stored as UTF-8 bytes, never pickled)."""

        blob, offs = _encode_strings(self.prompts)
        tensors = {f"acts/{k}": v for k, v in self.acts.items()}
        tensors.update({f"labels/{k}": v for k, v in self.labels.items()})
        tensors.update(
            token_ids=self.token_ids,
            token_offsets=self.token_offsets,
            prompt_bytes=blob,
            prompt_offsets=offs,
        )
        meta = {
            **self.meta,
            "positions": self.positions,
            "label_names": json.dumps(self.label_names),
        }
        return save_artifact(path, tensors, meta, format=_FORMAT, version=_VERSION)

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> Activations:
        """Load what :meth:`save` wrote."""

        t, meta = load_artifact(path, format=_FORMAT, max_version=_VERSION, device=device)
        label_names = json.loads(meta.pop("label_names", "{}"))
        positions = meta.pop("positions", "last")
        for key in ("format", "format_version"):
            meta.pop(key, None)
        return cls(
            acts={k[5:]: v for k, v in t.items() if k.startswith("acts/")},
            prompts=_decode_strings(t["prompt_bytes"], t["prompt_offsets"]),
            token_ids=t["token_ids"],
            token_offsets=t["token_offsets"],
            positions=positions,
            labels={k[7:]: v for k, v in t.items() if k.startswith("labels/")},
            label_names=label_names,
            meta=meta,
        )

    @classmethod
    def concat(cls, parts: Sequence[Activations]) -> Activations:
        """Join captures of the same sites and positions (e.g. shards) in order."""
        if not parts:
            raise EmptyInputError("nothing to concatenate: pass at least one Activations")
        first = parts[0]
        lengths = torch.tensor([0] + [int(p.token_offsets[-1]) for p in parts[:-1]]).cumsum(0)
        offsets = torch.cat(
            [parts[0].token_offsets[:1]]
            + [p.token_offsets[1:] + base for p, base in zip(parts, lengths, strict=False)]
        )
        return cls(
            acts={s: torch.cat([p.acts[s] for p in parts]) for s in first.acts},
            prompts=[q for p in parts for q in p.prompts],
            token_ids=torch.cat([p.token_ids for p in parts]),
            token_offsets=offsets,
            positions=first.positions,
            labels={k: torch.cat([p.labels[k] for p in parts]) for k in first.labels},
            label_names=first.label_names,
            meta=first.meta,
        )


def _encode_strings(texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    raw = [t.encode("utf-8") for t in texts]
    offsets = torch.tensor([0] + [len(r) for r in raw], dtype=torch.long).cumsum(0)
    blob = torch.frombuffer(bytearray(b"".join(raw)) or bytearray(1), dtype=torch.uint8)[
        : int(offsets[-1])
    ]
    return blob.clone(), offsets


def _decode_strings(blob: torch.Tensor, offsets: torch.Tensor) -> list[str]:
    data = bytes(blob.numpy().tobytes())
    bounds = offsets.tolist()
    return [data[a:b].decode("utf-8") for a, b in zip(bounds[:-1], bounds[1:], strict=False)]


@dataclass
class ShardedActivations:
    """A capture streamed to disk in shards; load all or some sites when needed."""

    directory: Path

    @property
    def shard_paths(self) -> list[Path]:
        return sorted(self.directory.glob("shard-*.safetensors"))

    def __iter__(self) -> Iterator[Activations]:
        for path in self.shard_paths:
            yield Activations.load(path)

    def load(self, sites: Sequence[str] | None = None) -> Activations:
        """Concatenate the shards, keeping only ``sites`` (all when None) to bound memory."""
        parts = []
        for part in self:
            if sites is not None:
                part.acts = {s: part[s] for s in sites}
            parts.append(part)
        return Activations.concat(parts)


def _pool(x: torch.Tensor, mask: torch.Tensor, pool: Pool) -> torch.Tensor:
    """(B, T, d) -> (B, d) for last/mean, (B, 2d) for last+mean, (real_tokens, d) for all.
    Left padding: last is -1."""
    if pool == "last":
        return x[:, -1]
    m = mask.to(x.dtype).unsqueeze(-1)  # (B, T, 1)
    if pool == "mean":
        return (x * m).sum(1) / m.sum(1).clamp(min=1)
    if pool == "last+mean":
        return torch.cat([x[:, -1], (x * m).sum(1) / m.sum(1).clamp(min=1)], -1)
    return x[mask.bool()]


def _prompt_texts(prompts: Any) -> tuple[list[str], dict[str, torch.Tensor], dict[str, list[str]]]:
    """Texts and label fields of a list of strings, a PromptSet, or records (objects or dicts).

    Records carry whatever string label fields they have (``intent``, ``risk``, ``category``,
    ``source``, or your own): every string field except ``text``/``id`` present in all records
    becomes a label. Intent and risk keep their fixed class order; other fields sort their values.
    """
    if isinstance(prompts, str):
        prompts = [prompts]
    try:
        items = None if isinstance(prompts, Mapping) else list(prompts)
    except TypeError:
        items = None
    if items is None or not all(isinstance(p, str) or _text_of(p) is not None for p in items):
        raise TypeError(
            f"prompts must be a list of str, a PromptSet, or records with a text field, got {type(prompts).__name__}"
        )
    if all(isinstance(p, str) for p in items):
        return items, {}, {}
    fixed = {"intent": list(INTENTS), "risk": list(RISKS)}
    fields = [_fields_of(p) for p in items]
    common = [k for k in fields[0] if all(k in f for f in fields[1:])]
    labels, names = {}, {}
    for key in common:
        values = [f[key] for f in fields]
        known = fixed.get(key, [])
        vocab = known if known and set(values) <= set(known) else sorted(set(values))
        position = {v: i for i, v in enumerate(vocab)}
        labels[key] = torch.tensor([position[v] for v in values], dtype=torch.long)
        names[key] = vocab
    return [str(_text_of(p)) for p in items], labels, names


def _text_of(record: Any) -> str | None:
    text = record.get("text") if isinstance(record, Mapping) else getattr(record, "text", None)
    return text if isinstance(text, str) else None


def _fields_of(record: Any) -> dict[str, str]:
    """A record's string label fields (everything but text, id and non-string values)."""
    if isinstance(record, Mapping):
        items = dict(record)
    elif dataclasses.is_dataclass(record):
        items = {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
    else:
        items = dict(vars(record)) if hasattr(record, "__dict__") else {}
    return {
        k: v
        for k, v in items.items()
        if isinstance(v, str) and k not in ("text", "id") and not k.startswith("_")
    }


@dataclass(frozen=True)
class _Spec:
    """What every chunk of one capture shares."""

    sites: tuple[Site, ...]
    pool: Pool
    batch_size: int
    label_names: dict[str, list[str]]
    meta: dict[str, str]
    dtype: torch.dtype
    progress: bool


@overload
def capture(
    model: OysterModel,
    prompts: Sequence[str] | Any,
    sites: str | Site | Sequence[str | Site] = ...,
    *,
    pool: Pool | None = ...,
    batch_size: int = ...,
    chat: bool = ...,
    labels: Mapping[str, torch.Tensor] | None = ...,
    label_names: Mapping[str, Sequence[str]] | None = ...,
    out_dir: None = ...,
    shard_size: int = ...,
    dtype: torch.dtype = ...,
    progress: bool = ...,
    positions: Pool | None = ...,
) -> Activations: ...
@overload
def capture(
    model: OysterModel,
    prompts: Sequence[str] | Any,
    sites: str | Site | Sequence[str | Site] = ...,
    *,
    pool: Pool | None = ...,
    batch_size: int = ...,
    chat: bool = ...,
    labels: Mapping[str, torch.Tensor] | None = ...,
    label_names: Mapping[str, Sequence[str]] | None = ...,
    out_dir: str | Path,
    shard_size: int = ...,
    dtype: torch.dtype = ...,
    progress: bool = ...,
    positions: Pool | None = ...,
) -> ShardedActivations: ...
def capture(
    model: OysterModel,
    prompts: Sequence[str] | Any,
    sites: str | Site | Sequence[str | Site] = "resid_post",
    *,
    pool: Pool | None = None,
    batch_size: int = 16,
    chat: bool = True,
    labels: Mapping[str, torch.Tensor] | None = None,
    label_names: Mapping[str, Sequence[str]] | None = None,
    out_dir: str | Path | None = None,
    shard_size: int = 1024,
    dtype: torch.dtype = torch.float32,
    progress: bool = True,
    positions: Pool | None = None,
) -> Activations | ShardedActivations:
    """Capture residual activations of ``prompts`` at ``sites``.

    Args:
        model: from :func:`oyster_steer.load_model`, on any backend.
        prompts: strings, a :class:`oyster_steer.data.PromptSet`, or records (objects or dicts with
            ``text``): every string field they all have (intent, risk, category, your own) comes
            along as a label.
        sites: site names, or a bare kind (``"resid_post"``) for every layer.
        pool: ``"last"`` token (default), ``"mean"`` over real tokens, ``"last+mean"`` (both side
            by side, (2d,) rows: the features of a ``read="last+mean"`` gate), or ``"all"`` real
            tokens.
        batch_size: prompts per forward pass; prompts are length-sorted to waste little padding.
        chat: wrap each prompt in the model's chat template first.
        out_dir: stream shards of ``shard_size`` prompts to this directory and return a
            :class:`ShardedActivations` (bounded memory for large prompt sets).
        positions: deprecated name of ``pool`` (removed in the next release).

    Example:
        >>> acts = capture(model, ["Hello!", "How do I kill a python process?"], "blocks.-1.hook_resid_post")  # doctest: +SKIP
        >>> acts["blocks.29.hook_resid_post"].shape  # doctest: +SKIP
        torch.Size([2, 576])
    """
    chosen = resolve_pool(pool, positions)
    texts, found_labels, found_names = _prompt_texts(prompts)
    if not texts:
        raise EmptyInputError("the prompt list is empty: pass at least one prompt")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    labels = dict(labels) if labels is not None else found_labels
    for key, value in labels.items():
        if len(value) != len(texts):
            raise ValueError(
                f"labels[{key!r}] has {len(value)} entries for {len(texts)} prompts: give one label per prompt"
            )
    resolved = sorted(
        resolve_sites(sites if not isinstance(sites, (str, Site)) else [sites], model.n_layers),
        key=lambda s: s.order,
    )
    spec = _Spec(
        sites=tuple(resolved),
        pool=chosen,
        batch_size=batch_size,
        label_names={k: list(v) for k, v in (label_names or found_names).items()},
        meta={
            "model_name": model.name,
            "model_fingerprint": model.fingerprint,
            "n_layers": str(model.n_layers),
            "backend": model.backend,
            "chat": str(chat),
        },
        dtype=dtype,
        progress=progress,
    )
    rows = model.token_rows(texts, chat=chat)  # one tokenizer call for all prompts
    empty = [i for i, row in enumerate(rows) if not row]
    if empty:
        raise EmptyInputError(f"prompt {empty[0]} has no tokens: pass non-empty text, or chat=True")
    if out_dir is None:
        return _capture_chunk(model, texts, rows, labels, spec)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for n, start in enumerate(range(0, len(texts), shard_size)):
        chunk = slice(start, start + shard_size)
        part_labels = {k: v[chunk] for k, v in labels.items()}
        part = _capture_chunk(model, texts[chunk], rows[chunk], part_labels, spec)
        part.save(out / f"shard-{n:05d}.safetensors")
    return ShardedActivations(out)


def resolve_pool(pool: Pool | None, positions: Pool | None, where: str = "capture") -> Pool:
    """``pool``, or the deprecated ``positions`` with a DeprecationWarning; checked."""
    if positions is not None:
        if pool is not None:
            raise TypeError("pass pool= only: positions= is its deprecated name")
        warnings.warn(
            f"{where}(positions=...) is deprecated: use {where}(pool=...); positions= goes in the next release",
            DeprecationWarning,
            stacklevel=3,
        )
        pool = positions
    chosen = "last" if pool is None else pool
    if chosen not in POOLS:
        raise ValueError(f"pool={chosen!r} is not supported: use one of {', '.join(POOLS)}")
    return chosen


def _capture_chunk(
    model: OysterModel,
    texts: list[str],
    token_rows: list[list[int]],
    labels: Mapping[str, torch.Tensor],
    spec: _Spec,
) -> Activations:
    order = sorted(range(len(texts)), key=lambda i: len(token_rows[i]))  # length-sorted batches
    backend = get_backend(model.backend)
    pooled: dict[str, list[torch.Tensor]] = {s.name: [] for s in spec.sites}
    with (
        torch.inference_mode(),
        tqdm(
            total=len(texts), desc="capture", unit="prompt", disable=not spec.progress, leave=False
        ) as bar,
    ):
        shared = _shared_prefix(model, token_rows)
        prefix, head = None, dict[str, torch.Tensor]()
        if shared:  # the chat template's fixed head: computed once, its KV reused by every batch
            hooks = [Hook(site, _keep(head, site.name)) for site in spec.sites]
            prefix_ids = torch.tensor([token_rows[0][:shared]], device=model.device)
            prefix = cast(Any, backend).prefix_kv(model, prefix_ids, hooks)  # hf only
        for start in range(0, len(order), spec.batch_size):
            batch = order[start : start + spec.batch_size]
            ids, mask = _left_pad_rows([token_rows[i][shared:] for i in batch], model)
            sizes = [len(token_rows[i]) - shared for i in batch]
            found: dict[str, torch.Tensor] = {}
            hooks = [
                Hook(site, _store(found, site.name, mask, spec.pool, head.get(site.name), sizes))
                for site in spec.sites
            ]
            if prefix is None:
                backend.forward(model, ids, mask, hooks, logits=False)
            else:
                cast(Any, backend).forward(model, ids, mask, hooks, logits=False, prefix=prefix)
            missing = [s.name for s in spec.sites if s.name not in found]
            if missing:
                raise OysterError(
                    f"the {model.backend} backend never reached sites {missing}: report this as a bug"
                )
            for name, value in found.items():
                # copy: a "last" row is a view that would keep the whole (B, T, d) batch alive
                pooled[name].append(value.to("cpu", spec.dtype, copy=True))
            bar.update(len(batch))
    return _assemble(texts, token_rows, order, pooled, labels, spec)


def _left_pad_rows(rows: list[list[int]], model: OysterModel) -> tuple[torch.Tensor, torch.Tensor]:

    return left_pad(rows, model.pad_id, model.device)


_MIN_SHARED = 8  # shorter shared heads are not worth a separate pass


def _shared_prefix(model: OysterModel, rows: list[list[int]]) -> int:
    """Length of the token prefix all ``rows`` share (the chat template's system head), leaving
    each row at least one token of its own; 0 when too short to pay, the backend cannot, a row
    does not fit in the model's sliding attention window, or the model is patched (a plan or a position-selective vector would take the rows' own tokens after a
    cached head for generated ones and read or steer the wrong tokens). Only on a CPU: on a GPU
    the head's own pass costs more launches than its FLOPs save (H200, random Llama-1B, 32
    prompts: 0.05 s with the shared head vs 0.03 s without; BENCHMARKS.md, "GPU")."""
    if model.backend != "hf" or model.device.type != "cpu" or len(rows) < 2 or carries_hooks(model):
        return 0
    window = sliding_window(model)
    if window is not None and max(len(r) for r in rows) >= window:
        return 0  # the padding between head and a short row could push the head out of its window
    n = shared_prefix_length(rows)
    return n if n >= _MIN_SHARED else 0


def _keep(head: dict[str, torch.Tensor], name: str) -> Any:
    def fn(x: torch.Tensor) -> None:
        head[name] = x[0]  # (P, d) activations of the shared prefix

    return fn


def _store(
    found: dict[str, torch.Tensor],
    name: str,
    mask: torch.Tensor,
    positions: Pool,
    head: torch.Tensor | None = None,
    sizes: list[int] | None = None,
) -> Any:
    def fn(x: torch.Tensor) -> None:
        found[name] = (
            _pool(x, mask, positions) if head is None else _join(x, mask, positions, head, sizes)
        )

    return fn


def _join(
    x: torch.Tensor, mask: torch.Tensor, positions: str, head: torch.Tensor, sizes: Any
) -> torch.Tensor:
    """Pool suffix activations ``x`` (B, T, d) with the shared prefix's ``head`` (P, d);
    ``sizes``: each row's real suffix tokens (host ints)."""
    if positions == "last":
        return x[:, -1]
    if positions in ("mean", "last+mean"):
        m = mask.to(x.dtype).unsqueeze(-1)  # (B, T, 1)
        mean = ((x * m).sum(1) + head.sum(0)) / (m.sum(1) + head.shape[0])
        return mean if positions == "mean" else torch.cat([x[:, -1], mean], -1)
    parts = torch.split(x[mask.bool()], sizes)
    return torch.cat([t for part in parts for t in (head, part)])


def _assemble(
    texts: list[str],
    token_rows: list[list[int]],
    order: list[int],
    pooled: dict[str, list[torch.Tensor]],
    labels: Mapping[str, torch.Tensor],
    spec: _Spec,
) -> Activations:
    """Undo the length sort so row i belongs to prompt i."""
    lengths = torch.tensor([len(token_rows[i]) for i in order])
    acts = {}
    for name, chunks in pooled.items():
        flat = torch.cat(chunks)
        if spec.pool == "all":
            per_prompt = list(torch.split(flat, lengths.tolist()))
            inverse = sorted(range(len(order)), key=lambda j: order[j])
            flat = torch.cat([per_prompt[j] for j in inverse])
        else:
            flat = flat[torch.argsort(torch.tensor(order))]
        acts[name] = flat
    offsets = torch.tensor([0] + [len(r) for r in token_rows], dtype=torch.long).cumsum(0)
    token_ids = torch.tensor([t for r in token_rows for t in r], dtype=torch.long)
    return Activations(
        acts=acts,
        prompts=texts,
        token_ids=token_ids,
        token_offsets=offsets,
        positions=spec.pool,
        labels={k: torch.as_tensor(v, dtype=torch.long) for k, v in labels.items()},
        label_names=spec.label_names,
        meta=dict(spec.meta),
    )
