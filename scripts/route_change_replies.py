"""Read what the model says where a policy change moved a prompt's route (issue 15, "read replies").

Finds the validation rows of ``probe_splits()`` (plain prompts, no attack wrapper) whose strategy
differs between two control packs (each pack's intent probe on its own features, last token or
prompt mean, from the ``train-probe`` capture cache; each pack's own payoff), picks up to ``--per-intent`` of them per intent (hash order,
seeded), and writes each one's greedy reply under both packs with the strategy each pack
actually applied (read back from the hooks), as markdown.

    PYTHONPATH=$PWD python scripts/route_change_replies.py --before runs/control-before.safetensors \\
        [--after vectors/smollm2-135m-instruct/control.safetensors] [--per-intent 4] [--out runs/route_changes.md]
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import torch

from oyster_steer import load_model
from oyster_steer.cli._probe import probe_features
from oyster_steer.control import DecisionLog, load_plan, patch_plan
from oyster_steer.eval._generate import generate_replies
from oyster_steer.probes._data import probe_splits


def _replies(model, pack: Path, prompts: list[str], max_new_tokens: int) -> tuple[list, list]:
    plan = load_plan(pack, model)
    with patch_plan(model, plan) as handle:
        log = DecisionLog(handle)
        replies = generate_replies(
            model, prompts, max_new_tokens=max_new_tokens, batch_size=4, decisions=log
        )
    return replies, log.result().strategy


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--before", type=Path, required=True)
    ap.add_argument(
        "--after", type=Path, default=Path("vectors/smollm2-135m-instruct/control.safetensors")
    )
    ap.add_argument("--cache", type=Path, default=Path("runs/capture-cache"))
    ap.add_argument("--split", default="validation")
    ap.add_argument("--per-intent", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--seed", default="0")
    ap.add_argument("--out", type=Path, default=Path("runs/route_changes.md"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    model = load_model()
    before, after = load_plan(args.before, model), load_plan(args.after, model)
    recs = [r for r in probe_splits().split(args.split) if not r.meta.get("attack")]
    texts = [r.text for r in recs]
    # each pack's own probe on its own features (last token or prompt mean), its own payoff
    post_b = before.probe.probs(probe_features(model, before.probe, texts, args.cache)).cpu()
    post = after.probe.probs(probe_features(model, after.probe, texts, args.cache)).cpu()
    sb = before.policy.reindex(before.probe.labels).gates(post_b).argmax(-1)
    sa = after.policy.reindex(after.probe.labels).gates(post).argmax(-1)
    moved = [i for i in range(len(recs)) if int(sb[i]) != int(sa[i])]
    print(f"{len(moved)} of {len(recs)} plain {args.split} rows change route")
    key = lambda i: hashlib.sha256(f"{args.seed}:{recs[i].id}".encode()).hexdigest()  # noqa: E731
    picked: list[int] = []
    for intent in ("benign", "borderline", "vulnerable", "malicious"):
        rows = sorted((i for i in moved if recs[i].intent == intent), key=key)
        picked += rows[: args.per_intent]
    prompts = [recs[i].text for i in picked]
    rb, routes_b = _replies(model, args.before, prompts, args.max_new_tokens)
    ra, routes_a = _replies(model, args.after, prompts, args.max_new_tokens)
    lines = [f"# Route changes on {args.split}: {args.before} -> {args.after}", ""]
    lines.append(f"{len(moved)} of {len(recs)} plain rows change route; {len(picked)} read below.")
    for j, i in enumerate(picked):
        r = recs[i]
        p = ", ".join(
            f"{n} {v:.2f}" for n, v in zip(after.probe.labels, post[i].tolist(), strict=True)
        )
        lines += [
            "",
            f"## {r.intent} ({r.source}, {r.risk}): {routes_b[j]} -> {routes_a[j]}",
            f"posterior: {p}",
            f"> {r.text[:300]}",
            f"- before ({routes_b[j]}): {rb[j]!r}",
            f"- after ({routes_a[j]}): {ra[j]!r}",
        ]
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
