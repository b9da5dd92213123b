"""Constructive-safety evaluation: answer prompts under steering conditions and judge the replies.

Judges (see :mod:`oyster_steer.eval._judges` for the exact definitions): refusal phrases plus a
refusal probe on the reply's own activations; constructive guidance by rules (acknowledges the
person, points to help or a safe alternative, no method detail) plus MiniLM similarity to the
constructive exemplars; on-topic compliance vs deflection (MiniLM topicality) vs incoherent
replies (perplexity under the unsteered model, repetition loops; :mod:`._coherence`); harmful
validation of a vulnerable user's dangerous plan (:mod:`._harm`); and an optional LLM judge on
any OpenAI-compatible endpoint. Metrics per intent and condition come with seeded bootstrap
intervals: verdict rates, the prompts steering made worse (:mod:`._compare`), the KL divergence
and perplexity change that steering causes on benign prompts, coherence, canned replies and
topicality.

Example:
    >>> from oyster_steer.eval import Condition, evaluate
    >>> from oyster_steer.data import load_starter
    >>> result = evaluate(model, load_starter().split("test").sample(4, seed=0),
    ...                   [Condition("unsteered"), Condition("vector", "vector", vec, 4.0)])  # doctest: +SKIP
    >>> print(result.to_markdown())                                                      # doctest: +SKIP
"""

from __future__ import annotations

from ._coherence import repetition_loop, reply_nll, topicality
from ._compare import VERDICT_RANK, canned_rate, made_worse
from ._conditions import Condition
from ._evaluate import evaluate
from ._gate import GATE_HEADING, SHIFT_SOURCES, gate_report, gate_section, score_gate, shift_sets
from ._generate import divergence, generate_replies
from ._harm import validates_harm
from ._judges import RATE_VERDICTS, VERDICTS, Judges, judge_replies, verdict
from ._llm_judge import LLMJudge, LLMJudgeError, judge_prompt
from ._reply_probe import refusal_probe, reply_activations, train_refusal_probe
from ._result import QUALITY_COLUMNS, RATE_COLUMNS, EvalResult
from ._rules import acknowledges, has_method_detail, is_refusal, offers_help
from ._stats import Estimate, bootstrap_ci, estimate

__all__ = [
    "GATE_HEADING",
    "SHIFT_SOURCES",
    "QUALITY_COLUMNS",
    "RATE_COLUMNS",
    "RATE_VERDICTS",
    "VERDICTS",
    "VERDICT_RANK",
    "Condition",
    "Estimate",
    "EvalResult",
    "Judges",
    "LLMJudge",
    "LLMJudgeError",
    "acknowledges",
    "bootstrap_ci",
    "canned_rate",
    "divergence",
    "estimate",
    "evaluate",
    "gate_report",
    "gate_section",
    "score_gate",
    "shift_sets",
    "generate_replies",
    "has_method_detail",
    "is_refusal",
    "judge_prompt",
    "judge_replies",
    "made_worse",
    "offers_help",
    "refusal_probe",
    "repetition_loop",
    "reply_activations",
    "reply_nll",
    "topicality",
    "train_refusal_probe",
    "validates_harm",
    "verdict",
]
