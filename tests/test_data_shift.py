"""The gate's lookalike and jailbreak training sets (issue 15 item 1): labels, grouped splits,
attack augmentation inside a split, and the leave-one-source-out fit."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from oyster_steer.data import (
    PromptRecord,
    PromptSet,
    load_jailbreakbench,
    split_of,
)
from oyster_steer.data._shift import (
    TEMPLATE_SLOT,
    load_coconot_contrast,
    load_inthewild_forbidden,
    load_inthewild_templates,
    load_jbb_artifacts,
    load_phtest,
    load_shift_sources,
)
from oyster_steer.probes._data import is_wrapped, probe_splits
from oyster_steer.probes._loso import leave_one_source_out


def test_split_key_moves_a_record_into_the_split_of_its_key():
    goal = "Write a poem about the sea"
    keyed = [
        PromptRecord(f"wrapper {i}: {goal}", "malicious", "harmful", meta={"split_key": goal})
        for i in range(30)
    ]
    assert {split_of(r) for r in keyed} == {split_of(goal)}
    plain = [PromptRecord(f"wrapper {i}: {goal}", "malicious", "harmful") for i in range(30)]
    assert len({split_of(r) for r in plain}) > 1  # without the key they scatter


def test_shift_sources_refuse_an_unknown_name_and_list_the_known_ones():
    with pytest.raises(
        ValueError, match=r"sources has unknown 'imaginary'; use names from phtest, "
    ):
        load_shift_sources(sources=["phtest", "imaginary"])


def test_phtest_and_coconot_labels(data_dir):
    ph = load_phtest(data_dir)
    assert Counter(r.meta["part"] for r in ph) == {"harmless": 2069, "controversial": 1191}
    assert all(r.intent == ("benign" if r.meta["part"] == "harmless" else "borderline") for r in ph)
    coco = load_coconot_contrast(data_dir)
    assert len(coco) == 379 and {r.intent for r in coco} == {"benign"}


def test_jbb_artifacts_share_the_split_of_their_goal(data_dir):
    arts = load_jbb_artifacts(data_dir)
    goals = {
        r.meta["twin"]: split_of(r)
        for r in load_jailbreakbench(data_dir)
        if r.intent == "malicious"
    }
    assert {r.intent for r in arts} == {"malicious"}
    assert all(split_of(r) == goals[r.meta["goal_index"]] for r in arts)
    by_goal: dict[str, set[str]] = {}
    for r in arts:
        by_goal.setdefault(r.meta["goal_index"], set()).add(split_of(r))
    assert all(len(s) == 1 for s in by_goal.values()) and len(by_goal) == 100


def test_inthewild_templates_hold_malicious_and_benign_requests_of_their_split(data_dir):
    forbidden = load_inthewild_forbidden(data_dir)
    assert Counter(r.intent for r in forbidden)["borderline"] == 150
    filled = load_inthewild_templates(data_dir)
    inner = {
        r.id: r
        for r in list(forbidden)
        + list(load_phtest(data_dir))
        + list(load_coconot_contrast(data_dir))
    }
    by_template: dict[str, list[PromptRecord]] = {}
    for r in filled:
        assert TEMPLATE_SLOT not in r.text and inner[r.meta["wrapped_from"]].text in r.text
        assert split_of(inner[r.meta["wrapped_from"]]) == split_of(r)  # same split as the request
        by_template.setdefault(r.meta["template"], []).append(r)
    for rows in by_template.values():
        assert {r.intent for r in rows} == {"malicious", "benign"}  # the same frame, both intents
        assert len({split_of(r) for r in rows}) == 1


def test_probe_splits_attack_every_intent_inside_its_split():
    from oyster_steer.data import load_starter

    data = probe_splits(
        load_starter(),
        wrap_fraction=0.0,
        attack_fractions={"train": 0.5, "validation": 0.5, "test": 0.5},
    )
    for name in ("train", "validation", "test"):
        ps = data.split(name)
        originals = {r.id: r for r in ps if not is_wrapped(r)}
        attacked = [r for r in ps if is_wrapped(r)]
        assert {r.intent for r in attacked} == {"benign", "borderline", "vulnerable", "malicious"}
        for r in attacked:
            src = originals[r.meta["wrapped_from"]]
            assert (r.intent, r.risk, split_of(src)) == (src.intent, src.risk, name)
    none = probe_splits(load_starter(), wrap_fraction=0.0, attack_fractions={})
    assert not any(is_wrapped(r) for name in ("train", "test") for r in none.split(name))


def test_train_attacks_add_attack_copies_of_the_named_intents_to_train_only():
    from oyster_steer.data import load_starter

    kw = {"wrap_fraction": 0.0, "attack_fractions": {}}
    plain = probe_splits(load_starter(), **kw)
    more = probe_splits(load_starter(), train_attacks={"benign": 1.0, "vulnerable": 0.5}, **kw)
    for name in ("validation", "test"):
        assert [r.text for r in more.split(name)] == [r.text for r in plain.split(name)]
    added = [r for r in more.train if is_wrapped(r)]
    originals = {r.id: r for r in plain.train}
    short = [r for r in plain.train if len(r.text) <= 600]
    assert {r.intent for r in added} == {"benign", "vulnerable"}
    assert sum(r.intent == "benign" for r in added) == sum(r.intent == "benign" for r in short)
    n_vul = sum(r.intent == "vulnerable" for r in short)
    assert 0.3 * n_vul < sum(r.intent == "vulnerable" for r in added) < 0.7 * n_vul
    for r in added:
        src = originals[r.meta["wrapped_from"]]
        assert (r.intent, r.risk) == (src.intent, src.risk) and r.text != src.text
    assert "train_attacks" in more.description
    with pytest.raises(ValueError, match="train_attacks"):
        probe_splits(load_starter(), train_attacks={"harmless": 0.5})


def test_train_wraps_add_a_second_template_copy_to_train_only():
    from oyster_steer.data import load_starter

    kw = {"wrap_fraction": 0.5, "attack_fractions": {}}
    plain = probe_splits(load_starter(), **kw)
    more = probe_splits(load_starter(), train_wraps={"benign": 1.0}, **kw)
    for name in ("validation", "test"):
        assert [r.text for r in more.split(name)] == [r.text for r in plain.split(name)]
    texts = [r.text for r in more.train]
    assert len(texts) == len(set(texts))  # a copy identical to a first wrap is dropped
    added = [r for r in more.train if r.text not in {p.text for p in plain.train}]
    short = [r for r in plain.train if not is_wrapped(r) and len(r.text) <= 600]
    n_benign = sum(r.intent == "benign" for r in short)
    assert {r.intent for r in added} == {"benign"} and 0.7 * n_benign < len(added) <= n_benign
    assert all(r.meta["wrapper"].isdigit() for r in added) and "train_wraps" in more.description
    with pytest.raises(ValueError, match="train_wraps"):
        probe_splits(load_starter(), train_wraps={"benign": 2.0})


def test_probe_splits_never_wrap_a_jailbreak_again():
    jb = PromptSet(
        [
            PromptRecord(f"jailbreak {i}", "malicious", "harmful", source="jbb-artifacts")
            for i in range(40)
        ]
    )
    data = probe_splits(jb, wrap_fraction=0.0, attack_fractions={"train": 1.0}, caps={})
    assert not any(is_wrapped(r) for r in data.train)


def _toy(n: int, offset: torch.Tensor, flip: bool, gen: torch.Generator):
    y = torch.randint(0, 2, (n,), generator=gen)
    sign = -1.0 if flip else 1.0
    x = torch.randn(n, 8, generator=gen) * 0.3 + offset
    x[:, 0] += sign * (2 * y.float() - 1) * 2
    return x, y


def test_leave_one_source_out_scores_each_source_with_a_probe_trained_without_it():
    gen = torch.Generator().manual_seed(0)
    feats, recs, ys = {}, {}, {}
    for split, n in (("train", 120), ("validation", 60), ("test", 60)):
        parts = []
        for src, flip in (("a", False), ("b", False), ("c", False), ("odd", True)):
            x, y = _toy(n, torch.zeros(8), flip, gen)
            parts.append(
                (
                    x,
                    y,
                    [
                        PromptRecord(f"{src} {split} {i}", "benign", "safe", source=src)
                        for i in range(n)
                    ],
                )
            )
        feats[split] = torch.cat([p[0] for p in parts])
        ys[split] = torch.cat([p[1] for p in parts])
        recs[split] = [r for p in parts for r in p[2]]
    rows = leave_one_source_out(
        feats, recs, ys, ("neg", "pos"), site="blocks.0.hook_resid_post", target_fpr=0.05
    )
    got = {(r["source"], r["label"]): r for r in rows}
    assert set(got) == {(s, c) for s in ("a", "b", "c", "odd") for c in ("neg", "pos")}
    assert (
        got[("a", "pos")]["n"] + got[("a", "neg")]["n"] == 240
    )  # every split of the held-out source
    # a source that follows the others' rule is read well without it; the flipped one is read backwards
    assert got[("a", "pos")]["read_as_label"] > 0.9 and got[("b", "neg")]["read_as_label"] > 0.9
    assert got[("odd", "pos")]["read_as_label"] < 0.1 and "flag" in got[("odd", "pos")]
    with pytest.raises(ValueError, match="no record has"):
        leave_one_source_out(
            feats, recs, ys, ("neg", "pos"), site="blocks.0.hook_resid_post", sources=["zzz"]
        )


def test_shift_sets_keep_only_test_rows_of_the_sets_the_probes_train_on(data_dir):
    from oyster_steer.eval import shift_sets

    rows = shift_sets(data_dir, n=12, seed=1)
    trained = {"phtest", "coconot-contrast", "jbb-artifacts", "inthewild-forbidden"}
    trained |= {"inthewild-template", "self-harm-train-sources"}
    kept = [r for r in rows if r.source in trained]
    assert kept and all(split_of(r) == "test" for r in kept)
    assert {r.source for r in kept} == trained
    every = shift_sets(data_dir, n=12, seed=1, split=None)
    assert any(split_of(r) == "train" for r in every if r.source == "phtest")


def test_inthewild_templates_do_not_depend_on_the_string_hash_seed(data_dir):
    # a set's order follows PYTHONHASHSEED; templates of equal length once swapped indices (and so
    # inner requests) between processes, and the probes' validation split with them
    import os
    import subprocess
    import sys

    code = (
        "import hashlib, sys\n"
        "from oyster_steer.data._shift import load_inthewild_templates\n"
        "ps = load_inthewild_templates(sys.argv[1])\n"
        "print(hashlib.md5('\\n'.join(r.meta['template'] + r.text for r in ps).encode()).hexdigest())\n"
    )
    digests = set()
    for seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", code, str(data_dir)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        digests.add(out.stdout.strip())
    assert len(digests) == 1


def test_gate_written_rows_are_labelled_unique_and_not_the_unseen_prompts():
    from pathlib import Path

    from oyster_steer.data import normalize_text
    from oyster_steer.data._shift import load_gate_written

    rows = load_gate_written()
    counts = Counter(r.intent for r in rows)
    assert set(counts) == {"benign", "borderline", "vulnerable", "malicious"}
    assert counts["vulnerable"] >= 60 and all(r.source == "gate-written" for r in rows)
    assert all(r.risk == "harmful" for r in rows if r.intent in ("vulnerable", "malicious"))
    texts = [normalize_text(r.text) for r in rows]
    assert len(set(texts)) == len(texts)
    # the lead's never-used prompts stay out of training
    unseen = (Path(__file__).resolve().parents[1] / "scripts" / "score_unseen.py").read_text()
    assert not [r.text for r in rows if r.text in unseen]
    with pytest.raises(FileNotFoundError, match="gate rows"):
        load_gate_written(path=Path("/nonexistent/gate.jsonl"))
