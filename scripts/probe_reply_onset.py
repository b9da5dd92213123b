"""Reading the model's own first reply tokens (issue 15 item 3): does an intent probe that also
reads the unsteered model's greedy reply onset separate benign/borderline from vulnerable better
than the shipped prompt read?

For every prompt of the probe splits (``probe_splits()``: a hash-chosen ``--train-limit`` train
subset, the whole validation split, and the test split for the final rows) the script
greedy-generates ``max(--ks)`` unsteered reply tokens (length-sorted batches, cut after an end
token; cached in ``--out`` so reruns are cheap), then runs one capture over the chat-formatted
prompt followed by those tokens (the prompt's activations are those of the prompt alone: the
model is causal) and reduces each row at each layer to:

- ``last``: the last prompt token (the shipped hook's read before ``last+mean``);
- ``last+mean``: that token and the mean over every chat-formatted prompt token side by side
  (what the shipped intent probe reads: ``capture(pool="last+mean")``);
- ``onset{k}``: the mean over the first ``k`` reply tokens (fewer when the reply ended sooner);
- ``last+mean|onset{k}``: the shipped read and ``onset{k}`` side by side.

The same logistic regression as ``train-probe`` (L2 and temperature chosen on validation,
class-balanced) per (variant, layer), fit on the same train rows. Validation columns for every
variant; test for the shipped-style baseline and the best two reply-reading variants by
validation macro-F1 (chosen before test is scored). Then the replies' onsets for benign rows the
baseline reads vulnerable, with what the best variant reads.

    PYTHONPATH=$PWD python scripts/probe_reply_onset.py --layers 12 16 --train-limit 1500 --out runs/reply_onset

CPU: one thread (``torch.set_num_threads(1)``).
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

import torch

from oyster_steer import load_model
from oyster_steer.activations._capture import _capture_chunk, _Spec
from oyster_steer.activations._scoring import greedy_continuations
from oyster_steer.core._metrics import summary
from oyster_steer.core._sites import resolve_sites
from oyster_steer.data._records import unit_hash
from oyster_steer.probes._data import is_wrapped, probe_splits
from oyster_steer.probes._sweep import task_labels
from oyster_steer.probes._train import train_probe

INTENTS = ("benign", "borderline", "vulnerable", "malicious")
BASELINE = "last+mean"


class _Text:
    def __init__(self, text: str) -> None:
        self.text = text


def _self_harm(r) -> bool:
    """Self-directed harm rows, as RESULTS.md counts them (vulnerable and harmful)."""
    return r.intent == "vulnerable" and r.risk == "harmful"


def _hash_subset(ps, n: int | None, salt: str):
    if n is None or n >= len(ps):
        return ps
    keep = sorted(ps, key=lambda r: unit_hash(f"{salt}:{r.id}"))[:n]
    ids = {r.id for r in keep}
    return ps.filter(predicate=lambda r: r.id in ids)


def _onsets(model, ps, n_tokens: int, batch_size: int, cache: Path) -> list[list[int]]:
    """The unsteered model's greedy first ``n_tokens`` reply tokens per prompt (cached by id)."""
    key = f"{model.fingerprint}:{n_tokens}"
    stored = json.loads(cache.read_text()) if cache.is_file() else {}
    found = stored.get(key, {})
    todo = [r for r in ps if r.id not in found]
    if todo:
        rows = model.token_rows([r.text for r in todo])
        order = sorted(range(len(todo)), key=lambda i: len(rows[i]))  # little padding per batch
        new = greedy_continuations(
            model, [tuple(rows[i]) for i in order], n_tokens, batch_size=batch_size
        )
        for i, ids in zip(order, new, strict=True):
            found[todo[i].id] = list(ids)
        stored[key] = found
        cache.write_text(json.dumps(stored))
    return [found[r.id] for r in ps]


def _features(model, ps, onsets, layers, ks, batch_size, chunk=64) -> dict:
    """{variant: {layer: (N, width)}}: prompt reads and reply-onset means, one capture pass."""
    texts = [r.text for r in ps]
    prompt_rows = model.token_rows(texts)
    sites = resolve_sites([f"blocks.{k}.hook_resid_post" for k in layers], model.n_layers)
    spec = _Spec(
        sites=tuple(sorted(sites, key=lambda s: s.order)),
        pool="all",
        batch_size=batch_size,
        label_names={},
        meta={},
        dtype=torch.float32,
        progress=False,
    )
    names = ["last", "last+mean", *(f"onset{k}" for k in ks)]
    out: dict[str, dict[int, list[torch.Tensor]]] = {v: {k: [] for k in layers} for v in names}
    for start in range(0, len(texts), chunk):
        sl = slice(start, start + chunk)
        rows = [p + list(o) for p, o in zip(prompt_rows[sl], onsets[sl], strict=True)]
        acts = _capture_chunk(model, texts[sl], rows, {}, spec)
        off = acts.token_offsets.tolist()
        for layer, site in zip(layers, [s.name for s in spec.sites], strict=True):
            x = acts[site].float()
            for i, prompt in enumerate(prompt_rows[sl]):
                full = x[off[i] : off[i + 1]]  # (P + R, d)
                p = full[: len(prompt)]
                reply = full[len(prompt) :]
                out["last"][layer].append(p[-1].clone())
                out["last+mean"][layer].append(torch.cat([p[-1], p.mean(0)]))
                for k in ks:
                    # a reply that ended at once has its end token; none at all reads the prompt end
                    part = reply[:k] if len(reply) else p[-1:]
                    out[f"onset{k}"][layer].append(part.mean(0))
    feats = {v: {k: torch.stack(t) for k, t in d.items()} for v, d in out.items()}
    for k in ks:
        feats[f"{BASELINE}|onset{k}"] = {
            layer: torch.cat([feats[BASELINE][layer], feats[f"onset{k}"][layer]], -1)
            for layer in layers
        }
    return feats


def _rate(hit: torch.Tensor, keep: list[bool]) -> tuple[float, int]:
    sel = torch.tensor(keep, dtype=torch.bool)
    n = int(sel.sum())
    return (round(100 * float(hit[sel].float().mean()), 1) if n else float("nan")), n


def _metrics(probs: torch.Tensor, labels: torch.Tensor, ps) -> dict:
    pred = probs.argmax(-1)
    b, bl, v, m = (INTENTS.index(x) for x in INTENTS)
    recs = list(ps)
    return {
        "macro_f1": round(summary(probs, labels)["macro_f1"], 4),
        "vulnerable_read_malicious": _rate(pred == m, [r.intent == "vulnerable" for r in recs]),
        "self_harm_read_malicious": _rate(pred == m, [_self_harm(r) for r in recs]),
        "benign_borderline_read_vulnerable": _rate(
            pred == v, [r.intent in ("benign", "borderline") for r in recs]
        ),
        "wrapped_benign_read_vulnerable": _rate(
            pred == v, [r.intent == "benign" and is_wrapped(r) for r in recs]
        ),
        "malicious_read_benign_borderline": _rate(
            (pred == b) | (pred == bl), [r.intent == "malicious" for r in recs]
        ),
    }


def _cell(m: dict) -> str:
    def pct(key):
        value, n = m[key]
        return f"{value:.1f}% (n={n})"

    return (
        f"{m['macro_f1']:.3f} | {pct('vulnerable_read_malicious')} | "
        f"{pct('self_harm_read_malicious')} | {pct('benign_borderline_read_vulnerable')} | "
        f"{pct('wrapped_benign_read_vulnerable')} | {pct('malicious_read_benign_borderline')}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--layers", type=int, nargs="+", default=[12, 16])
    ap.add_argument("--ks", type=int, nargs="+", default=[1, 4, 8])
    ap.add_argument("--out", type=Path, default=Path("runs/reply_onset"))
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--train-limit", type=int, default=1500, help="hash-chosen train prompts")
    ap.add_argument(
        "--limit", type=int, default=None, help="hash-chosen prompts per split (cost checks, tests)"
    )
    ap.add_argument("--test-limit", type=int, default=None, help="hash-chosen test prompts")
    ap.add_argument("--splits", nargs="+", default=["validation", "test"], help="splits scored")
    ap.add_argument(
        "--prompts", nargs="*", default=[], help="extra prompts read by the baseline and best two"
    )
    ap.add_argument("--model", default=None, help="'tiny' for a random-init test model")
    ap.add_argument(
        "--show", type=int, default=12, help="benign/borderline rows misread vulnerable shown"
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    args.layers = sorted(args.layers)  # the capture's sites come back in layer order
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    if args.model == "tiny":
        from oyster_steer.testing import tiny_model

        model = tiny_model()
    else:
        model = load_model(*([args.model] if args.model else []))
    data = probe_splits()
    splits = {s: data.split(s) for s in ["train", *args.splits]}
    splits["train"] = _hash_subset(splits["train"], args.train_limit, "pool")  # probe_pooling's
    for s in splits:
        splits[s] = _hash_subset(splits[s], args.limit, "onset")
    if "test" in splits:
        splits["test"] = _hash_subset(splits["test"], args.test_limit, "onset-test")
    n_tok = max(args.ks)
    feats, onsets, timing = {}, {}, {}
    for s, ps in splits.items():
        t0 = time.time()
        onsets[s] = _onsets(model, ps, n_tok, args.batch_size, args.out / f"onsets-{s}.json")
        t1 = time.time()
        cached = args.out / f"features-{s}.pt"
        key = {"n": len(ps), "layers": args.layers, "ks": args.ks, "model": model.fingerprint}
        stored = torch.load(cached) if cached.is_file() else None
        if stored is not None and stored["key"] == key:
            feats[s] = stored["feats"]
        else:
            feats[s] = _features(model, ps, onsets[s], args.layers, args.ks, args.batch_size)
            torch.save({"key": key, "feats": feats[s]}, cached)
        timing[s] = {
            "prompts": len(ps),
            "generate_s": round(t1 - t0),
            "capture_s": round(time.time() - t1),
        }
        print(json.dumps({"split": s, **timing[s]}), flush=True)
    labels = {s: task_labels("intent", ps)[0] for s, ps in splits.items()}
    names = task_labels("intent", splits["train"][:1])[1].labels
    variants = list(feats["train"])
    probes, rows = {}, []
    for variant in variants:
        for layer in args.layers:
            probe = train_probe(
                feats["train"][variant][layer],
                labels["train"],
                site=f"blocks.{layer}.hook_resid_post",
                label_names=names,
                val=(feats["validation"][variant][layer], labels["validation"]),
            )
            probes[variant, layer] = probe
            p = probe.probs(feats["validation"][variant][layer])
            row = {
                "variant": variant,
                "layer": layer,
                "validation": _metrics(p, labels["validation"], splits["validation"]),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    # chosen on validation, before test is scored: the baseline and the best two onset readers
    reading = [r for r in rows if "onset" in r["variant"]]
    best = sorted(reading, key=lambda r: -r["validation"]["macro_f1"])[:2]
    # the shipped read at the shipped layer (12) and at the best readers' layers
    shipped_layer = 12 if 12 in args.layers else args.layers[0]
    base_layers = sorted({shipped_layer, *(r["layer"] for r in best)})
    base = [r for r in rows if r["variant"] == BASELINE and r["layer"] in base_layers]
    base.sort(key=lambda r: r["layer"] != shipped_layer)  # base[0]: the shipped layer
    chosen = [*base, *best]
    if "test" in splits:
        for r in chosen:
            probe = probes[r["variant"], r["layer"]]
            p = probe.probs(feats["test"][r["variant"]][r["layer"]])
            r["test"] = _metrics(p, labels["test"], splits["test"])
    print(
        "\n| read | layer | split | intent macro-F1 | vulnerable read malicious | self-harm read "
        "malicious | benign+borderline read vulnerable | wrapped benign read vulnerable | "
        "malicious read benign/borderline |\n|---|---|---|---|---|---|---|---|---|"
    )
    for r in rows:
        print(f"| {r['variant']} | {r['layer']} | validation | {_cell(r['validation'])} |")
    for r in chosen:
        if "test" in r:
            print(f"| {r['variant']} | {r['layer']} | test | {_cell(r['test'])} |")
    # benign/borderline rows the baseline reads vulnerable: their onsets and the best reader's call
    tok = model.tokenizer
    vi = INTENTS.index("vulnerable")
    for split in [s for s in ("validation", "test") if s in splits]:
        if not best:
            break
        b0 = base[0]
        pb = probes[BASELINE, b0["layer"]].probs(feats[split][BASELINE][b0["layer"]]).argmax(-1)
        top = best[0]
        pt = (
            probes[top["variant"], top["layer"]]
            .probs(feats[split][top["variant"]][top["layer"]])
            .argmax(-1)
        )
        recs = list(splits[split])
        hits = [
            i
            for i, r in enumerate(recs)
            if r.intent in ("benign", "borderline") and int(pb[i]) == vi
        ]
        fixed = sum(int(pt[i]) != vi for i in hits)
        print(
            f"\n{split}: {len(hits)} benign/borderline rows the baseline ({BASELINE} @ {b0['layer']}) "
            f"reads vulnerable; {top['variant']} @ {top['layer']} reads {fixed} of them otherwise"
        )
        for i in hits[: args.show]:
            onset = tok.decode(onsets[split][i], skip_special_tokens=True).replace("\n", " ")
            print(
                f"  [{recs[i].intent}, {recs[i].source}] {recs[i].text[:90]!r} -> onset {onset!r} -> "
                f"{INTENTS[int(pt[i])]}"
            )
        new = [
            i
            for i, r in enumerate(recs)
            if r.intent in ("benign", "borderline") and int(pt[i]) == vi and int(pb[i]) != vi
        ]
        print(f"  ... and {len(new)} benign/borderline rows it newly reads vulnerable")
        for r in chosen:
            pr = probes[r["variant"], r["layer"]].probs(feats[split][r["variant"]][r["layer"]])
            wrong = Counter(
                x.source
                for x, y in zip(recs, pr.argmax(-1).tolist(), strict=True)
                if x.intent in ("benign", "borderline") and y == vi
            )
            print(
                f"  {r['variant']} @ {r['layer']}: benign/borderline read vulnerable by source "
                f"{dict(wrong.most_common())}"
            )
        for intent in INTENTS:
            first = Counter(
                tok.decode(onsets[split][i][:1], skip_special_tokens=True).strip()
                for i, x in enumerate(recs)
                if x.intent == intent
            )
            n = sum(first.values())
            print(f"  {intent} onsets' first token (of {n}): {first.most_common(4)}")
        if len(best) > 1:
            second = best[1]
            ps2 = probes[second["variant"], second["layer"]].probs(
                feats[split][second["variant"]][second["layer"]]
            )
            for i in [i for i in hits if recs[i].intent == "benign"]:
                onset = tok.decode(onsets[split][i], skip_special_tokens=True).replace("\n", " ")
                print(
                    f"  benign [{recs[i].source}] {recs[i].text[:70]!r} -> onset {onset!r}: "
                    f"{top['variant']}@{top['layer']} {INTENTS[int(pt[i])]}, "
                    f"{second['variant']}@{second['layer']} {INTENTS[int(ps2[i].argmax())]}"
                )
        for i in new[:4]:
            onset = tok.decode(onsets[split][i], skip_special_tokens=True).replace("\n", " ")
            print(
                f"  new [{recs[i].intent}, {recs[i].source}] {recs[i].text[:90]!r} -> onset {onset!r}"
            )
        for intent in ("vulnerable", "malicious"):
            for i in [i for i, r in enumerate(recs) if r.intent == intent][:3]:
                onset = tok.decode(onsets[split][i], skip_special_tokens=True).replace("\n", " ")
                print(
                    f"  {intent} {recs[i].text[:70]!r} -> onset {onset!r}: baseline "
                    f"{INTENTS[int(pb[i])]}, onset reader {INTENTS[int(pt[i])]}"
                )
    if args.prompts and best:
        # named prompts (e.g. the lookalikes the shipped gate guides): baseline and best readers
        extra = [_Text(t) for t in args.prompts]
        ons = greedy_continuations(
            model, [tuple(r) for r in model.token_rows(args.prompts)], n_tok, args.batch_size
        )
        fx = _features(model, extra, ons, args.layers, args.ks, args.batch_size)
        print("\nnamed prompts: baseline / best readers (posterior of vulnerable)")
        for j, text in enumerate(args.prompts):
            reads = []
            for r in [base[0], *best]:
                pr = probes[r["variant"], r["layer"]].probs(
                    fx[r["variant"]][r["layer"]][j : j + 1]
                )[0]
                reads.append(
                    f"{r['variant']}@{r['layer']}: {INTENTS[int(pr.argmax())]} ({float(pr[vi]):.2f})"
                )
            onset = tok.decode(ons[j], skip_special_tokens=True).replace("\n", " ")
            print(f"  {text!r} -> onset {onset!r}: " + "; ".join(reads))
    (args.out / "reply_onset.json").write_text(
        json.dumps(
            {
                "timing": timing,
                "rows": rows,
                "chosen": [(r["variant"], r["layer"]) for r in chosen],
            },
            indent=1,
        )
    )
    print(f"total {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
