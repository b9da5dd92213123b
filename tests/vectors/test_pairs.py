"""train_vector on your own data: triples, pairs, two Activations; reads; every aggregator."""

from __future__ import annotations

import pytest
import torch

from oyster_steer import EmptyInputError
from oyster_steer.activations import capture
from oyster_steer.data import contrast_triples, load_starter
from oyster_steer.testing import tiny_model
from oyster_steer.vectors._train import (
    aggregate,
    logistic_direction,
    mean_difference,
    reply_activations,
    train_vector,
)

SITE = "blocks.1.hook_resid_post"
PAIRS = [
    ("I love this film, it is wonderful.", "I hate this film, it is dreadful."),
    ("What a kind and generous friend.", "What a cruel and selfish friend."),
    ("The food was delicious.", "The food was disgusting."),
    ("Thank you so much for the help!", "You were no help at all."),
]
TRIPLES = [
    ("How was the trip?", "It was lovely, thank you.", "It was awful."),
    ("Do you like the gift?", "I adore it!", "Not really."),
    ("How do you feel today?", "Calm and happy.", "Angry and tired."),
]


@pytest.fixture(scope="module")
def model():
    return tiny_model("llama")


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a, b, dim=0))


def _planted(seed: int = 0, n: int = 200, d: int = 32, shift: float = 2.0):
    gen = torch.Generator().manual_seed(seed)
    u = torch.nn.functional.normalize(torch.randn(d, generator=gen), dim=0)
    base = torch.randn(2 * n, d, generator=gen)
    return base[:n] + shift * u, base[n:], u


def test_logistic_direction_recovers_a_planted_direction_and_scales_like_mean_diff():
    pos, neg, u = _planted()
    d = logistic_direction(pos, neg)
    assert _cos(d, u) > 0.9
    torch.testing.assert_close(d.norm(), mean_difference(pos, neg).norm())
    # an anisotropic nuisance axis with a large mean shift hurts mean_diff, not the boundary normal
    gen = torch.Generator().manual_seed(3)
    noise = torch.randn(400, 32, generator=gen)
    noise[:, 0] *= 30.0  # huge variance on axis 0
    pos2, neg2 = noise[:200] + 2.0 * u, noise[200:]
    assert _cos(logistic_direction(pos2, neg2), u) > _cos(mean_difference(pos2, neg2), u)


def test_aggregate_methods_and_callables():
    pos, neg, u = _planted(1)
    for method in ("mean_diff", "pca", "logistic"):
        assert _cos(aggregate(method, pos, neg, paired=True), u) > 0.9, method
    median = lambda p, n: p.median(0).values - n.median(0).values  # noqa: E731
    torch.testing.assert_close(aggregate(median, pos, neg, paired=False), median(pos, neg))
    with pytest.raises(TypeError, match=r"returned .*: return one \(32,\) tensor"):
        aggregate(lambda p, n: p, pos, neg, paired=True)
    with pytest.raises(ValueError, match=r"method='pca' needs paired"):
        aggregate("pca", pos, neg[:10], paired=False)
    with pytest.raises(ValueError, match=r"unknown method 'cav'"):
        aggregate("cav", pos, neg, paired=True)


def test_pairs_read_last_is_the_mean_difference_of_last_tokens(model):
    v = train_vector(model, PAIRS, method="mean_diff", read="last", sites=SITE, progress=False)
    pos = capture(model, [p for p, _ in PAIRS], SITE, chat=False, progress=False)[SITE]
    neg = capture(model, [n for _, n in PAIRS], SITE, chat=False, progress=False)[SITE]
    torch.testing.assert_close(v.directions[SITE], pos.mean(0) - neg.mean(0), atol=1e-5, rtol=1e-5)
    assert v.method == "mean_diff" and v.meta["read"] == "last" and v.meta["data"] == "4 pairs"
    # an index, a slice and a mask read the same tokens as their named equivalents
    for same, named in ((-1, "last"), (slice(None), "mean"), (lambda ids: ids >= 0, "mean")):
        w = train_vector(model, PAIRS, read=same, sites=SITE, progress=False)
        u = train_vector(model, PAIRS, read=named, sites=SITE, progress=False)
        torch.testing.assert_close(w.directions[SITE], u.directions[SITE], atol=1e-5, rtol=1e-5)
    first = train_vector(model, PAIRS, read=0, sites=SITE, progress=False)
    assert not torch.allclose(first.directions[SITE], v.directions[SITE])


def test_two_activations_give_the_same_vector(model):
    pos = capture(model, [p for p, _ in PAIRS], SITE, chat=False, progress=False)
    neg = capture(model, [n for _, n in PAIRS], SITE, chat=False, progress=False)
    a = train_vector(model, (pos, neg), sites=SITE, progress=False)
    b = train_vector(model, PAIRS, read="last", sites=SITE, progress=False)
    torch.testing.assert_close(a.directions[SITE], b.directions[SITE], atol=1e-5, rtol=1e-5)
    full = [
        capture(model, [t[i] for t in PAIRS], SITE, pool="all", chat=False, progress=False)
        for i in (0, 1)
    ]
    c = train_vector(model, tuple(full), read=-1, sites=SITE, progress=False)
    torch.testing.assert_close(c.directions[SITE], b.directions[SITE], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match=r"captured with positions='last', so read=0 cannot apply"):
        train_vector(model, (pos, neg), read=0, sites=SITE, progress=False)


def test_triples_read_the_reply_after_the_chat_prompt(model):
    v = train_vector(model, TRIPLES, method="pca", sites=SITE, progress=False)
    prompts = [t[0] for t in TRIPLES]
    pos = reply_activations(model, prompts, [t[1] for t in TRIPLES], [v.sites[0]], progress=False)[
        SITE
    ]
    neg = reply_activations(model, prompts, [t[2] for t in TRIPLES], [v.sites[0]], progress=False)[
        SITE
    ]
    assert v.meta["read"] == "reply" and v.method == "pca"
    assert _cos(v.directions[SITE], aggregate("pca", pos, neg, paired=True)) > 0.9999
    custom = train_vector(
        model, TRIPLES, method=lambda p, n: (p - n).sum(0), sites=SITE, progress=False
    )
    torch.testing.assert_close(custom.directions[SITE], (pos - neg).sum(0), atol=1e-4, rtol=1e-4)
    assert custom.method == "<lambda>"


def test_the_oyster_contrasts_are_one_caller_of_the_generic_path(model):
    data = load_starter()
    v = train_vector(
        model,
        data,
        method="mean_diff",
        target="refusal",
        intents=["benign"],
        sites=SITE,
        progress=False,
    )
    records = [r for r in data if r.intent == "benign"]
    w = train_vector(model, contrast_triples(records, "refusal"), sites=SITE, progress=False)
    torch.testing.assert_close(v.directions[SITE], w.directions[SITE], atol=1e-5, rtol=1e-5)


def test_errors_name_the_argument(model):
    with pytest.raises(
        ValueError, match=r"read='reply' needs \(prompt, positive, negative\) triples"
    ):
        train_vector(model, PAIRS, read="reply", sites=SITE, progress=False)
    with pytest.raises(ValueError, match=r"method='learned' scores replies after prompts"):
        train_vector(model, PAIRS, method="learned", sites=SITE, progress=False)
    with pytest.raises(TypeError, match=r"pairs must all be"):
        train_vector(model, [("a", "b"), ("a", "b", "c")], sites=SITE, progress=False)
    with pytest.raises(IndexError, match=r"read=50 is out of range for text 0"):
        train_vector(model, PAIRS, read=50, sites=SITE, progress=False)
    with pytest.raises(EmptyInputError, match=r"selects no token"):
        train_vector(model, PAIRS, read=slice(0, 0), sites=SITE, progress=False)
    with pytest.raises(ValueError, match=r"read='first' is not supported"):
        train_vector(model, PAIRS, read="first", sites=SITE, progress=False)
