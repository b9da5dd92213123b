"""Labelled prompt data for probes and steering: records, sets, splits and loaders.

Example:
    >>> from oyster_steer.data import load_all
    >>> ps = load_all()                      # public sets in ../shared/data + the starter set
    >>> train, test = ps.split("train"), ps.split("test")
    >>> y = train.label_ids("intent")        # (N,) in the order of INTENTS
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from ._categories import CATEGORY_MAPS, RISK_CATEGORIES, map_category, risk_rule, risk_rules
from ._loaders import (
    CSSRS_LABELS,
    DNA_LABELS,
    DNA_SPECIFIC_LABELS,
    LOADERS,
    STARTER_PATH,
    CounselAnswer,
    load_advbench,
    load_all,
    load_alpaca,
    load_counsel_answers,
    load_counsel_chat,
    load_do_not_answer,
    load_harmbench,
    load_jailbreakbench,
    load_reddit_cssrs,
    load_simplesafetytests,
    load_starter,
    load_strongreject,
)
from ._paths import DATA_ENV_VAR, default_data_dir
from ._promptset import DEFAULT_FRACTIONS, SOURCE_PRIORITY, SPLITS, PromptSet, split_of
from ._records import (
    INTENTS,
    RISKS,
    UNKNOWN_CATEGORY,
    DataError,
    EmptyDataError,
    LabelError,
    PromptRecord,
    make_id,
    normalize_text,
)
from ._table import DEFAULT_RISK, load_table

__all__ = [
    "ATTACK_TRANSFORMS",
    "CATEGORY_MAPS",
    "CSSRS_LABELS",
    "DATA_ENV_VAR",
    "DEFAULT_FRACTIONS",
    "DEFAULT_RISK",
    "DNA_LABELS",
    "DNA_SPECIFIC_LABELS",
    "INTENTS",
    "LOADERS",
    "RISKS",
    "RISK_CATEGORIES",
    "SOURCE_PRIORITY",
    "SPLITS",
    "STARTER_PATH",
    "UNKNOWN_CATEGORY",
    "WRAPPER_TEMPLATES",
    "CounselAnswer",
    "DataError",
    "EmptyDataError",
    "Exemplar",
    "LabelError",
    "PromptRecord",
    "PromptSet",
    "apply_attack",
    "ascii_letters",
    "augment_attacks",
    "contrast_triples",
    "default_data_dir",
    "exemplar_for",
    "load_advbench",
    "load_all",
    "load_alpaca",
    "load_counsel_answers",
    "load_counsel_chat",
    "load_do_not_answer",
    "load_harmbench",
    "load_jailbreakbench",
    "load_reddit_cssrs",
    "load_simplesafetytests",
    "load_starter",
    "load_strongreject",
    "load_table",
    "make_id",
    "map_category",
    "normalize_text",
    "risk_rule",
    "risk_rules",
    "split_of",
    "wrap_prompt",
]

# Written alongside this package; imported on first use so the data layer works without them.
_LAZY = {
    "Exemplar": "._exemplars",
    "exemplar_for": "._exemplars",
    "wrap_prompt": "._wrappers",
    "WRAPPER_TEMPLATES": "._wrappers",
    "ATTACK_TRANSFORMS": "._wrappers",
    "apply_attack": "._wrappers",
    "augment_attacks": "._wrappers",
    "ascii_letters": "._wrappers",
    "contrast_triples": "._contrast",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name], __name__), name)
        globals()[name] = value  # cache: later lookups skip this hook
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
