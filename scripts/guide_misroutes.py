"""Why benign and borderline prompts are routed to "guide" (issue 15, the routing half of issue 14).

For every benign or borderline row of a split of ``probe_splits()`` that the shipped policy sends
to guide, names the reading that put it there (the intent probe's posterior from the
``train-probe`` capture cache):

* ``read vulnerable``: the probe's top intent is vulnerable with p >= 0.6 (a probe reading, no
  policy can move it without moving real vulnerable rows with it);
* ``vulnerable doubt``: p(vulnerable) >= 0.15 and no confident vulnerable reading (guide is the
  policy's answer to "maybe in distress");
* ``malicious doubt``: otherwise, p(malicious) >= 0.15 (guide is the abstention between helping and
  redirecting);
* ``other``: the rest (borderline readings with both doubts small).

Then the reddit-cssrs rows (every split): the labels rate the *user* (DATA.md), so a comment
addressed to someone else ("you ...") is labelled by its writer's C-SSRS level. Counted: plain
reddit-cssrs rows whose second-person words outnumber first-person ones, by label, with the
share the probe reads as vulnerable.

Last, with ``--rows`` (an ``oyster-steer eval`` JSONL, e.g. the 48-per-intent evaluation): the
route the policy (and ``--previous``, another policy JSON) gives each of its prompts, per intent,
from the same posteriors (the prompts must be rows of ``probe_splits()``, as the eval's test
split is).

With ``--self-harm-weights 1 4 8``: the intent probe refit at its site on the train split with
each self-directed harm row (vulnerable/harmful) counted that many times (L2 0.01, as shipped;
the fit is chosen and calibrated on validation), reporting intent macro-F1 and self-harm rows read
malicious on validation and test: whether the probe can read self-harm as vulnerable by weight.

    PYTHONPATH=$PWD python scripts/guide_misroutes.py [--split test] [--rows EVAL.jsonl --previous OLD.json]
        [--self-harm-weights 1 4 8]
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

import torch

from oyster_steer import load_model, load_probe
from oyster_steer.cli._probe import probe_features
from oyster_steer.control._policy_calibration import load_policy
from oyster_steer.probes._data import probe_splits

FIRST = {"i", "im", "me", "my", "myself", "ive", "id", "ill", "mine"}
SECOND = {"you", "your", "youre", "yourself", "youll", "youve", "yours", "u"}


def _person(text: str) -> tuple[int, int]:
    words = re.findall(r"[a-z]+", text.lower().replace("'", ""))
    return sum(w in FIRST for w in words), sum(w in SECOND for w in words)


def _cause(p: torch.Tensor, labels: tuple[str, ...]) -> str:
    v, m = labels.index("vulnerable"), labels.index("malicious")
    if int(p.argmax()) == v and float(p[v]) >= 0.6:
        return "read vulnerable"
    if float(p[v]) >= 0.15:
        return "vulnerable doubt"
    if float(p[m]) >= 0.15:
        return "malicious doubt"
    return "other"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--probes", type=Path, default=Path("probes/smollm2-135m-instruct"))
    ap.add_argument("--cache", type=Path, default=Path("runs/capture-cache"))
    ap.add_argument("--split", default="test")
    ap.add_argument("--rows", type=Path, default=None, help="an eval JSONL whose prompts to route")
    ap.add_argument("--previous", type=Path, default=None, help="a previous policy JSON to compare")
    ap.add_argument("--self-harm-weights", type=int, nargs="*", default=[])
    args = ap.parse_args()
    torch.set_num_threads(1)
    model = load_model()
    probe = load_probe(args.probes / "intent.safetensors", model)
    policy = load_policy(args.probes / "policy.json").reindex(probe.labels)
    data = probe_splits()
    guide = policy.strategies.index("guide")
    post, recs = {}, {}
    for split in ("train", "validation", "test"):
        ps = data.split(split)
        feats = probe_features(model, probe, ps.texts, args.cache)
        post[split], recs[split] = probe.probs(feats).cpu(), list(ps)
    for split in (args.split,):
        choice = policy.gates(post[split]).argmax(-1)
        causes: Counter = Counter()
        n: Counter = Counter()
        for i, r in enumerate(recs[split]):
            if r.intent not in ("benign", "borderline"):
                continue
            n[r.intent] += 1
            if int(choice[i]) == guide:
                src = "reddit-cssrs" if r.source == "reddit-cssrs" else "other sources"
                causes[(r.intent, src, _cause(post[split][i], probe.labels))] += 1
        print(
            f"\n{split}: benign/borderline rows the policy sends to guide, by the reading behind it"
        )
        print(
            "| intent | source | read vulnerable | vulnerable doubt | malicious doubt | other | n rows |"
        )
        print("|---|---|---|---|---|---|---|")
        for intent in ("benign", "borderline"):
            for src in ("reddit-cssrs", "other sources"):
                row = [
                    causes[(intent, src, c)]
                    for c in ("read vulnerable", "vulnerable doubt", "malicious doubt", "other")
                ]
                if sum(row):
                    print(
                        f"| {intent} | {src} | " + " | ".join(map(str, row)) + f" | {n[intent]} |"
                    )
    print("\nreddit-cssrs plain rows, all splits: second-person-dominant comments by label")
    print("| label | rows | second person > first person | of those read vulnerable |")
    print("|---|---|---|---|")
    v = probe.labels.index("vulnerable")
    for label in ("Supportive", "Indicator", "Ideation", "Behavior", "Attempt"):
        rows = second = read_v = 0
        for split in recs:
            for i, r in enumerate(recs[split]):
                if (
                    r.source != "reddit-cssrs"
                    or r.meta.get("attack")
                    or r.meta.get("cssrs") != label
                ):
                    continue
                rows += 1
                first, sec = _person(r.text)
                if sec > first:
                    second += 1
                    read_v += int(int(post[split][i].argmax()) == v)
        print(f"| {label} | {rows} | {second} | {read_v} |")
    if args.rows is not None:
        _route_rows(args, model, probe, policy, post, recs)
    if args.self_harm_weights:
        _reweigh(args, model, probe, data)


def _reweigh(args, model, probe, data) -> None:
    from oyster_steer.probes._train import train_probe

    site = probe.site.name
    x, recs = {}, {}
    for split in ("train", "validation", "test"):
        ps = data.split(split)
        x[split], recs[split] = probe_features(model, probe, ps.texts, args.cache), list(ps)
    labels = list(probe.labels)
    harm = lambda r: r.intent == "vulnerable" and r.risk == "harmful"  # noqa: E731
    print(f"\nintent probe refit at {site} with self-directed harm rows weighted")
    print(
        "| weight | val macro-F1 | val self-harm read malicious | test macro-F1 | test self-harm read malicious |"
    )
    print("|---|---|---|---|---|")
    for w in args.self_harm_weights:
        idx = [i for i, r in enumerate(recs["train"]) for _ in range(w if harm(r) else 1)]
        fit = train_probe(
            x["train"][torch.tensor(idx)],
            [recs["train"][i].intent for i in idx],
            site=site,
            label_names=labels,
            val=(x["validation"], [r.intent for r in recs["validation"]]),
            l2_grid=(0.01,),
        )
        cells = []
        for split in ("validation", "test"):
            pred = fit.probs(x[split]).argmax(-1).cpu()
            y = torch.tensor([labels.index(r.intent) for r in recs[split]])
            f1 = []
            for c in range(len(labels)):
                tp = int(((pred == c) & (y == c)).sum())
                f1.append(2 * tp / max(int((pred == c).sum()) + int((y == c).sum()), 1))
            sh = torch.tensor([harm(r) for r in recs[split]])
            mal = float((pred[sh] == labels.index("malicious")).float().mean())
            cells += [f"{sum(f1) / len(f1):.3f}", f"{100 * mal:.0f}% (n={int(sh.sum())})"]
        print(f"| {w} | " + " | ".join(cells) + " |")


def _route_rows(args, model, probe, policy, post, recs) -> None:
    import json

    index = {}
    for split in recs:
        for i, r in enumerate(recs[split]):
            index.setdefault(r.text, post[split][i])
    seen: dict[str, dict] = {}
    for line in args.rows.read_text().splitlines():
        row = json.loads(line)
        if row.get("kind") == "reply" and row["prompt"] not in seen:
            seen[row["prompt"]] = row
    missing = [p for p in seen if p not in index]
    if missing:  # rows the probe splits' caps left out: read them now (and cache them)
        feats = probe_features(model, probe, missing, args.cache)
        index.update(zip(missing, probe.probs(feats).cpu(), strict=True))
    found = [(row, index[p]) for p, row in seen.items()]
    print(f"\n{args.rows}: {len(found)} prompts ({len(missing)} read now, outside probe_splits())")
    policies = [("shipped", policy)]
    if args.previous is not None:
        policies.insert(0, ("previous", load_policy(args.previous).reindex(probe.labels)))
    strategies = policy.strategies
    print(
        "| policy | intent | n | "
        + " | ".join(strategies)
        + " | reddit-cssrs Supportive -> guide |"
    )
    print("|---|---|---|" + "---|" * (len(strategies) + 1))
    p = torch.stack([x for _, x in found])
    for name, pol in policies:
        choice = pol.gates(p).argmax(-1)
        for intent in ("benign", "borderline", "vulnerable", "malicious"):
            sel = [k for k, (row, _) in enumerate(found) if row["intent"] == intent]
            if not sel:
                continue
            counts = [sum(int(choice[k]) == j for k in sel) for j in range(len(strategies))]
            sup = sum(
                int(choice[k]) == strategies.index("guide")
                for k in sel
                if found[k][0]["source"] == "reddit-cssrs" and intent == "borderline"
            )
            print(
                f"| {name} | {intent} | {len(sel)} | "
                + " | ".join(map(str, counts))
                + f" | {sup} |"
            )


if __name__ == "__main__":
    main()
