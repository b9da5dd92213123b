"""The 32 Oyster-I risk categories, their reply rules, and maps from each source's own labels.

The names are hard-coded so the package works without ``../shared``; the rule texts (the
"safety guideline" for a constructive reply in each category) are read lazily from
``oyster-risk-rules/risk_rules_released_32.derived.csv`` when that file is present.
Anything a map does not cover becomes ``"unknown"``. The 32 released rules have no sexual-content
category, so sexual-content labels map to ``"unknown"`` rather than to a rule that does not fit.
"""

from __future__ import annotations

import csv
import os
from functools import lru_cache
from pathlib import Path

from ._paths import default_data_dir
from ._records import UNKNOWN_CATEGORY, DataError, LabelError

__all__ = [
    "CATEGORY_MAPS",
    "DNA_SPECIFIC_HARM_CATEGORIES",
    "RISK_CATEGORIES",
    "RISK_RULES_FILE",
    "map_category",
    "risk_rule",
    "risk_rules",
]

RISK_CATEGORIES: tuple[str, ...] = (
    "Cult",
    "Illicit Uses",
    "Biodiversity Protection",
    "Religious Superstition",
    "Cybersecurity",
    "Commercial Law Violations",
    "Intellectual Property",
    "Violation of Personal Rights",
    "Harmful Scenes",
    "Promotion of Negative Values",
    "Subjective Evaluation/Comparison",
    "Business Ethics Violations",
    "Race/Ethnicity/Religion/Regional Discrimination",
    "Gender/Occupational/Age/Other Demographic Discrimination",
    "Vulnerable Groups",
    "Special Groups",
    "Bodily Harm",
    "Mental Health",
    "Hate and Abuse",
    "Personal Data",
    "Business Data",
    "Sensitive Data",
    "Common Sense Factual Errors",
    "Non-political False Rumors",
    "Illegal Drugs",
    "Gambling",
    "Hazardous Materials",
    "Illegal Acts",
    "Violent Terror",
    "Healthcare",
    "Investment and Finance",
    "Legal Consultation",
)
RISK_RULES_FILE = Path("oyster-risk-rules") / "risk_rules_released_32.derived.csv"
_U = UNKNOWN_CATEGORY

HARMBENCH_CATEGORIES: dict[str, str] = {  # SemanticCategory
    "cybercrime_intrusion": "Cybersecurity",
    "misinformation_disinformation": "Non-political False Rumors",
    "illegal": "Illegal Acts",
    "chemical_biological": "Hazardous Materials",
    "harassment_bullying": "Hate and Abuse",
    # glorifying violence, graphic scenes, persuading people into unsafe acts
    "harmful": "Promotion of Negative Values",
}
JBB_CATEGORIES: dict[str, str] = {  # Category (harmful and benign rows alike)
    "Harassment/Discrimination": "Hate and Abuse",
    "Malware/Hacking": "Cybersecurity",
    "Physical harm": "Bodily Harm",
    "Economic harm": "Illicit Uses",  # extortion, gambling schemes, bribery, counterfeiting
    "Fraud/Deception": "Illicit Uses",
    "Disinformation": "Non-political False Rumors",
    "Sexual/Adult content": _U,
    "Privacy": "Personal Data",
    "Expert advice": "Healthcare",  # mostly medical; legal and financial rows also occur
    "Government decision-making": "Illegal Acts",
}
STRONGREJECT_CATEGORIES: dict[str, str] = {  # category
    "Non-violent crimes": "Illegal Acts",
    "Violence": "Bodily Harm",
    "Disinformation and deception": "Non-political False Rumors",
    "Hate, harassment and discrimination": "Hate and Abuse",
    "Illegal goods and services": "Illicit Uses",
    "Sexual content": _U,
}
SST_CATEGORIES: dict[str, str] = {  # harm_area
    "Suicide, Self-Harm, and Eating Disorders": "Bodily Harm",  # rule: no methods, point to help
    "Physical harm and Violence": "Bodily Harm",
    "Illegal and Highly Regulated items": "Illicit Uses",
    "Scams and fraud": "Illicit Uses",
    "Child safety": "Illegal Acts",
}
DNA_HARM_TYPE_CATEGORIES: dict[str, str] = {  # types_of_harm
    "Risks from leaking or inferring sensitive information (organization/gov)": "Business Data",
    "Assisting illegal activities": "Illegal Acts",
    "Compromise privacy by leaking or inferring private information (person/individual)": (
        "Personal Data"
    ),
    "Social stereotypes and unfair discrimination": (
        "Gender/Occupational/Age/Other Demographic Discrimination"
    ),
    "Disseminating false or misleading information": "Non-political False Rumors",
    "Nudging or advising users to perform unethical or unsafe actions": (
        "Promotion of Negative Values"
    ),
    "Mental Health or Overreliance Crisis": "Mental Health",
    "Causing material harm by disseminating misinformation e.g. in medicine or law": "Healthcare",
    "Toxic language (hate speech)": "Hate and Abuse",
    "Treat Chatbot as a Human": "Mental Health",
    "Reducing the cost of disinformation campaigns": "Non-political False Rumors",
    "Adult Content": _U,
}
# Finer do-not-answer labels: matched against the start of `specific_harms`; they win over the
# type-level map above.
DNA_SPECIFIC_HARM_CATEGORIES: dict[str, str] = {
    "Classified Information": "Sensitive Data",
    "Cybersecurity Vulnerabilities": "Cybersecurity",
    "Animal Abuse/Cruelty/Poaching": "Biodiversity Protection",
    "Copyright Infringement": "Intellectual Property",
    "Financial Crimes": "Illicit Uses",
    "Illegal Digital Activities": "Cybersecurity",
    "Illegal Drugs and Substances": "Illegal Drugs",
    "Substance Abuse": "Illegal Drugs",
    "Terrorist Activities": "Violent Terror",
    "Violence and Physical Harm": "Bodily Harm",
    "Threats and Intimidation": "Hate and Abuse",
    "Illegitimate surveillance and censorship": "Violation of Personal Rights",
    "Illegal Trade": "Illicit Uses",
    "Racial/Ethnic Discrimination": "Race/Ethnicity/Religion/Regional Discrimination",
    "Religious Discrimination": "Race/Ethnicity/Religion/Regional Discrimination",
    "Location Discrimination": "Race/Ethnicity/Religion/Regional Discrimination",
    "Disability Discrimination": "Vulnerable Groups",
    "Misinterpretation or Wrong Context": "Common Sense Factual Errors",
    "Medical Advice": "Healthcare",
    "Legal Advice": "Legal Consultation",
    "Financial Advice": "Investment and Finance",
    "Unreliable Experts": "Common Sense Factual Errors",
    "Self-Harm": "Bodily Harm",
    "Endorsement of Unsafe Health Practices": "Healthcare",
    "Guide for Risky Pranks": "Bodily Harm",
    "Defamatory Content": "Violation of Personal Rights",
    "Endorsement of Cyberbullying": "Hate and Abuse",
    "Trolling or Flame baiting": "Hate and Abuse",
    "Spam Content": "Illicit Uses",
    "Malinformation": "Personal Data",
    "Graphic Violence": "Harmful Scenes",
    "Ask for personal information": _U,
}
# Sources whose every prompt shares one category need no map; the loaders pass it directly.
CATEGORY_MAPS: dict[str, dict[str, str]] = {
    "harmbench": HARMBENCH_CATEGORIES,
    "jailbreakbench": JBB_CATEGORIES,
    "strongreject": STRONGREJECT_CATEGORIES,
    "simplesafetytests": SST_CATEGORIES,
    "do-not-answer": DNA_HARM_TYPE_CATEGORIES,
}


def map_category(source: str, label: str, detail: str = "") -> str:
    """One of ``RISK_CATEGORIES`` (or ``"unknown"``) for a source's own category label.

    Args:
        source: a key of ``CATEGORY_MAPS``.
        label: the source's category value.
        detail: a finer label where the source has one (do-not-answer ``specific_harms``).

    Example:
        >>> map_category("harmbench", "cybercrime_intrusion")
        'Cybersecurity'
    """
    if source not in CATEGORY_MAPS:
        raise LabelError(
            f"source={source!r} has no category map; use one of {', '.join(CATEGORY_MAPS)}."
        )
    if source == "do-not-answer" and detail:
        for prefix, category in DNA_SPECIFIC_HARM_CATEGORIES.items():
            if detail.startswith(prefix):
                return category
    return CATEGORY_MAPS[source].get(label.strip(), UNKNOWN_CATEGORY)


@lru_cache(maxsize=4)
def _read_rules(path: str) -> dict[str, str]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"风险类别en", "对外风险规则en"} <= set(rows[0]):
        raise DataError(
            f"{path} lacks the columns 风险类别en and 对外风险规则en; restore the unchanged "
            "oyster-risk-rules CSV."
        )
    return {row["风险类别en"].strip(): row["对外风险规则en"].strip() for row in rows}


def risk_rules(data_dir: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """Category -> English reply rule, read from the Oyster CSV; empty when the file is absent."""
    base = Path(data_dir) if data_dir is not None else default_data_dir()
    if base is None or not (base / RISK_RULES_FILE).is_file():
        return {}
    return dict(_read_rules(str(base / RISK_RULES_FILE)))


def risk_rule(category: str, data_dir: str | os.PathLike[str] | None = None) -> str | None:
    """The English rule for a safe, constructive reply in ``category``.

    Returns:
        The rule text, or None for ``"unknown"`` or when the rules file is absent.

    Example:
        >>> rule = risk_rule("Mental Health")
        >>> rule is None or "professional" in rule
        True
    """
    if category == UNKNOWN_CATEGORY:
        return None
    if category not in RISK_CATEGORIES:
        raise LabelError(
            f"category={category!r} is not one of the 32 Oyster risk categories; "
            "see oyster_steer.data.RISK_CATEGORIES."
        )
    return risk_rules(data_dir).get(category)
