"""What the demo runs: plain data, imported by the demo and by each of its stages."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..models._model import DEFAULT_MODEL
from ..models._registry import BackendName

__all__ = ["DemoConfig"]


@dataclass
class DemoConfig:
    """What the demo runs (defaults fit ~10 minutes on a 2-core CPU)."""

    model: str = DEFAULT_MODEL
    backend: BackendName = "hf"
    device: str | None = None
    out: Path = Path("out/report.html")
    work_dir: Path = Path("runs/demo")  # capture cache, results JSONL, trained fallbacks
    n_per_class: int = 4  # evaluation prompts per intent from the starter test split
    max_new_tokens: int = 40
    batch_size: int = 16
    sweep_stride: int = 2  # sweep every k-th layer (the last layer is always included)
    trace_tokens: int = 24
    calibrate_per_intent: int = 8  # held-out prompts per intent for the strength curve
    strength: float | None = None  # constructive vector strength (None: its calibrated default)
    use_shared: bool = True  # extra plots from ../shared/data when present
    refusal_probe: str | None = None  # path; None trains one on exemplars (cached per model)
    seed: int = 0
    strict: bool = False
    progress: bool = True
