"""The MiniLM sentence-embedding baseline: embeddings and the same logistic regression."""

from __future__ import annotations

import pytest
import torch

from oyster_steer.probes._baseline import embed_texts, train_baseline, truncated_count

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: single-threaded fits


def test_embeddings_are_unit_norm_semantic_and_cached(tmp_path):
    texts = [
        "How do I bake sourdough bread?",
        "What's a good sourdough recipe?",
        "Explain TCP handshakes.",
    ]
    e = embed_texts(texts, cache=tmp_path)
    assert e.shape == (3, 384)
    assert torch.allclose(e.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert e[0] @ e[1] > e[0] @ e[2] + 0.2  # bread is nearer bread than networking
    assert list(tmp_path.glob("minilm-*.safetensors")) and torch.equal(
        embed_texts(texts, cache=tmp_path), e
    )
    batched = embed_texts(texts + ["x " * 300], batch_size=2)[
        :3
    ]  # padding and batching do not move rows
    assert torch.allclose(batched, e, atol=1e-5)
    assert truncated_count(["short", "word " * 400]) == 1


@pytest.mark.slow
def test_baseline_separates_starter_intents():
    from oyster_steer.data import load_starter

    splits = load_starter().splits()
    train, val = splits["train"], splits["validation"]
    base = train_baseline(
        train.texts,
        train.label_ids("intent"),
        val.texts,
        val.label_ids("intent"),
        label_names=("benign", "borderline", "vulnerable", "malicious"),
    )
    test = splits["test"]
    accuracy = (base.probs(test.texts).argmax(-1) == test.label_ids("intent")).float().mean()
    assert accuracy > 0.6
    assert base.probe.meta["features"].startswith("all-MiniLM-L6-v2")
