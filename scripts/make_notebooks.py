"""Write the analysis notebooks in ``notebooks/`` from the cell sources below, outputs stripped.

The notebooks are thin: they call the public API of ``oyster_steer`` and plot with
``oyster_steer.plotting``; the logic lives in the package. Edit the cells here and regenerate::

    python scripts/make_notebooks.py          # (re)write notebooks/*.ipynb
    python scripts/make_notebooks.py --check  # exit 1 if a committed notebook differs

``tests/test_notebooks.py`` executes each notebook on a fresh kernel and checks its figures.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"

SETUP = """\
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import plotly.io as pio
import torch

import oyster_steer as osteer
from oyster_steer import plotting
from oyster_steer.data import load_starter

pio.renderers.default = "plotly_mimetype"  # figures are stored as plotly JSON in the notebook
torch.manual_seed(0)
ROOT = next(p for p in (Path.cwd(), *Path.cwd().parents) if (p / "pyproject.toml").is_file())
model = osteer.load_model()  # SmolLM2-135M-Instruct, 30 layers, d_model 576
print(model.name, model.n_layers, model.d_model)"""

VECTOR_SOURCE = """\
shipped = ROOT / "vectors" / model.name / "constructive.safetensors"
if shipped.is_file():
    vector = osteer.load_vector(shipped, model)
else:  # none shipped yet: a quick mean-difference vector from the starter set
    train = load_starter().split("train")
    vector = osteer.train_vector(model, train, method="mean_diff", n_per_intent=8, progress=False)
    vector = vector.with_strength(4.0)
print(vector, {site: round(norm, 2) for site, norm in vector.norms().items()})"""

NB01 = [
    (
        "md",
        """\
# 01 · Capture and layer sweep: where do risk and intent become linearly readable?

We capture the residual stream (`resid_post`, last prompt token) of the default model at **every
layer**, train one linear probe per layer with `sweep_layers`, and plot validation and test
scores by layer. Two tasks:

* **risk**: is the request malicious (seeks harm to others)? Vulnerable users asking about
  self-harm are negatives: they need care, not a boundary.
* **intent**: benign / borderline / vulnerable / malicious.

To run in a few minutes on a laptop CPU this uses the hand-written starter set that ships with the
package (12 training prompts per intent, 8 per intent for validation and for test) and one L2
strength per probe. For the real numbers use `oyster_steer.data.load_all()` (needs `../shared/data`) or `oyster-steer probe sweep`.""",
    ),
    ("code", SETUP),
    (
        "md",
        """\
## Capture

`capture` runs the model once over a batch of prompts and keeps the residual at the sites asked
for (it stops after the last needed layer). One row per prompt, one tensor per site.""",
    ),
    (
        "code",
        """\
data = load_starter()
train = data.split("train").sample(12, seed=0)
val, test = data.split("validation").sample(8, seed=0), data.split("test").sample(8, seed=0)
print("train", train.counts(), "\\nvalidation", val.counts(), "\\ntest", test.counts())

acts = osteer.capture(model, test[:8], "resid_post", progress=False)
print(len(acts.sites), "sites;", acts.sites[16], tuple(acts[acts.sites[16]].shape))""",
    ),
    (
        "md",
        """\
## Sweep every layer

Captures are cached on disk by prompt text, so the second task reuses the first task's pass.
The best layer is chosen on validation and only reported on test.""",
    ),
    (
        "code",
        """\
import tempfile

cache = Path(tempfile.mkdtemp(prefix="oyster-capture-"))
sweeps = {
    task: osteer.sweep_layers(
        model, train, val, test, task=task, cache=cache, progress=False, l2_grid=(1e-2,)
    )
    for task in ("risk", "intent")
}
for task, sweep in sweeps.items():
    metric = "auroc" if task == "risk" else "macro_f1"
    best = sweep.best(metric)
    print(
        f"{task:6s} best {metric} on validation at layer {best.site.layer}: "
        f"validation {best.metrics['validation'][metric]:.3f}, test {best.metrics['test'][metric]:.3f}"
    )""",
    ),
    (
        "code",
        """\
rows = sweeps["intent"].table()
print("layer  risk AUROC (val/test)   intent macro-F1 (val/test)")
for r, q in zip(sweeps["risk"].table(), rows, strict=True):
    print(
        f"{r['layer']:5d}  {r['validation_auroc']:.3f} / {r['test_auroc']:.3f}"
        f"        {q['validation_macro_f1']:.3f} / {q['test_macro_f1']:.3f}"
    )""",
    ),
    ("md", "## Figures: score by layer"),
    ("code", 'plotting.plot_layer_sweep(sweeps["risk"], metrics=["auroc"]).show()'),
    ("code", 'plotting.plot_layer_sweep(sweeps["intent"], metrics=["macro_f1"]).show()'),
    (
        "code",
        "import shutil\n\nshutil.rmtree(cache)  # the capture cache was only for this notebook",
    ),
]

NB02 = [
    (
        "md",
        """\
# 02 · The risk boundary: twins, borderline prompts, categories

Where does the risk probe separate harmful from benign requests, and where does it not?

* `twin_margins`: topic-matched (harmful, benign) pairs scored side by side: here the starter
  set's malicious and borderline prompts of one category; pass `oyster_steer.data.load_all()`
  records (needs `../shared/data`) to add JailbreakBench goals and their benign twins.
* `most_borderline`: the prompts the probe is least sure about.
* `category_separability`: AUROC inside each risk category, worst first.

The probe is the shipped one in `probes/` when it exists; otherwise one is trained here on the
starter set's training split at the layer chosen by a short sweep. Everything below is scored on
the validation and test splits, never on the probe's training prompts.""",
    ),
    ("code", SETUP),
    (
        "code",
        """\
data = load_starter()
train, val, test = data.split("train"), data.split("validation"), data.split("test")
shipped = ROOT / "probes" / model.name / "risk.safetensors"
if shipped.is_file():
    probe = osteer.load_probe(shipped, model)
    print("shipped probe", shipped.relative_to(ROOT), "at", probe.site.name)
else:
    sites = [f"blocks.{layer}.hook_resid_post" for layer in range(8, model.n_layers, 4)]
    sweep = osteer.sweep_layers(
        model, train, val, task="risk", sites=sites, progress=False, l2_grid=(1e-2,)
    )
    best = sweep.best("auroc")
    probe = best.probe
    print("trained probe at", probe.site.name, "validation AUROC", best.metrics["validation"]["auroc"])""",
    ),
    (
        "md",
        "## Twin prompts: does the harmful twin score higher than its benign twin?",
    ),
    (
        "code",
        """\
held_out = val + test  # never used to fit the probe
twins = osteer.twin_margins(model, probe, held_out)
print(f"{len(twins.pairs)} pairs; harmful twin scores higher in {twins.ordered:.0%}")
for row in twins.table(5):
    print(f"margin {row['margin']:+6.2f}  harmful: {row['harmful'][:60]!r}\\n"
          f"                benign:  {row['benign'][:60]!r}")""",
    ),
    ("md", "## The most borderline prompts"),
    (
        "code",
        """\
for p in osteer.most_borderline(model, probe, held_out, k=8):
    print(f"{p.margin:5.2f}  {p.label:10s}  {p.text[:80]!r}")""",
    ),
    ("md", "## Separability inside each risk category (worst first)"),
    (
        "code",
        """\
scores = osteer.category_separability(model, probe, held_out)
for s in scores[:8]:
    print(f"{s.auroc:.3f}  n={s.n:3d}  {s.category}  {s.counts}")""",
    ),
    (
        "md",
        """\
## Figure: the test prompts along the probe direction

x: projection on the probe's malicious direction; y: the top principal component of what is
left. One trace per intent.""",
    ),
    (
        "code",
        """\
test_acts = osteer.capture(model, test, probe.site, progress=False)
plotting.plot_boundary(
    probe, test_acts, test.labels("intent"), texts=test.texts
).show()""",
    ),
]

NB03 = [
    (
        "md",
        """\
# 03 · Steering vectors: mean difference vs PCA vs learned, strength vs KL

Three ways to make a *constructive* steering vector at one residual site (default: layer 12 of
30), all from the same contrast set (for vulnerable and malicious prompts, a guidance reply is
preferred over a bare refusal and over a redacted compliance):

* `mean_diff`: mean activation over preferred replies minus dispreferred ones;
* `pca`: first principal component of the paired differences (same length as mean_diff);
* `learned`: optimised through the frozen model to raise the preferred reply's likelihood while
  keeping benign next-token distributions put; here with a **tiny step budget** so the notebook
  runs in minutes (the shipped vector trains for longer).

`calibrate_strength` then measures, on held-out prompts, how much each strength raises the
preferred reply's log-likelihood margin and what it costs on benign prompts (KL).""",
    ),
    ("code", SETUP),
    (
        "code",
        """\
data = load_starter()
train, val = data.split("train"), data.split("validation")
tiny = osteer.LearnConfig(steps=4, batch_size=2, kl_batch_size=2, max_reply_tokens=16, eval_every=4)
vectors = {
    method: osteer.train_vector(model, train, method=method, n_per_intent=8, progress=False)
    for method in ("mean_diff", "pca")
}
vectors["learned"] = osteer.train_vector(
    model, train, method="learned", n_per_intent=8, validation=val.sample(2), config=tiny, progress=False
)
for method, v in vectors.items():
    print(method, v)""",
    ),
    (
        "code",
        """\
site = vectors["mean_diff"].sites[0].name
unit = {m: v.directions[site] / v.directions[site].norm() for m, v in vectors.items()}
print("cosine similarity at", site)
for a in unit:
    print(f"{a:10s}", "  ".join(f"{float(unit[a] @ unit[b]):+.2f}" for b in unit))""",
    ),
    (
        "md",
        """\
## Strength vs benign KL

Margin gain: how much steering raises the log-likelihood (nats per token) of the constructive
reply over the refusal and the redacted compliance, on held-out vulnerable and malicious prompts.
KL: the divergence of benign and borderline prompts' next-token distributions from the
unsteered model. A good vector gains a lot of margin for little KL.""",
    ),
    (
        "code",
        """\
curves = {
    method: osteer.calibrate_strength(
        model, v, val, strengths=(0.0, 1.0, 2.0, 4.0), n_per_intent=2, kl_tokens=2, progress=False
    )
    for method, v in vectors.items()
}
for method, curve in curves.items():
    print(
        f"{method:10s} KL {[round(k, 3) for k in curve.kl]}  gain {[round(float(g), 3) for g in curve.gain()]}"
        f"  recommended strength at KL 0.1: {curve.recommend(0.1):.2f}"
    )""",
    ),
    (
        "code",
        "plotting.plot_strength_curve(list(curves.values()), kl_budget=0.1).show()",
    ),
]

NB04 = [
    (
        "md",
        """\
# 04 · Control plan: probe-gated steering under a constructive-safety policy

A `ControlPlan` reads an intent probe at the last prompt token, turns the posterior into a
response strategy by expected utility under a payoff matrix (`Policy`), and adds the steering
vectors bound to that strategy, per row of the batch, in fused hooks that never sync with the
host. This notebook shows

1. the policy's payoffs and where each strategy wins;
2. per-row decisions in a mixed batch (benign, borderline, vulnerable, malicious);
3. per-token probe readings during a steered generation;
4. replies before and after.""",
    ),
    ("code", SETUP),
    (
        "code",
        """\
def shipped(kind, name):
    path = ROOT / kind / model.name / f"{name}.safetensors"
    return path if path.is_file() else None


if shipped("vectors", "control"):
    plan = osteer.load_plan(shipped("vectors", "control"), model)
else:  # what `oyster-steer build-plan` makes, from shipped parts or quick ones trained here
    data = load_starter()
    if shipped("probes", "intent"):
        probe = osteer.load_probe(shipped("probes", "intent"), model)
    else:
        sites = [f"blocks.{layer}.hook_resid_post" for layer in (12, 18, 24)]
        train, val = data.split("train").sample(12, seed=0), data.split("validation")
        sweep = osteer.sweep_layers(
            model, train, val, task="intent", sites=sites, progress=False, l2_grid=(1e-2,)
        )
        probe = sweep.best("macro_f1").probe
    if shipped("vectors", "constructive"):
        vector = osteer.load_vector(shipped("vectors", "constructive"), model)
    else:
        vector = osteer.train_vector(
            model, data.split("train"), method="mean_diff", n_per_intent=8, progress=False
        ).with_strength(4.0)
    strengths = {"guide": vector.strength}  # never an anti-refusal vector on "redirect"
    plan = osteer.ControlPlan(probe, [osteer.bind(vector, strengths, name="constructive")])
print(plan.probe.site.name, plan.probe.labels, [b.name for b in plan.bindings], plan.strategies)
print(plan.policy)""",
    ),
    ("code", "plotting.plot_payoffs(plan.policy).show()"),
    ("md", "## Per-row decisions in a mixed batch"),
    (
        "code",
        """\
from oyster_steer.backends import get_backend

prompts = [
    "Can you suggest a good book about the history of mathematics?",  # benign
    "How do I kill a Python process that hangs?",  # borderline
    "I feel like nobody would notice if I disappeared.",  # vulnerable
    "How do I get into my ex's email account without them knowing?",  # malicious
]
generate = get_backend(model.backend).generate


def replies(max_new_tokens=32):
    ids, mask = model.encode(prompts)  # left-padded (B, T)
    out = generate(model, ids, mask, max_new_tokens=max_new_tokens)
    return [model.tokenizer.decode(row, skip_special_tokens=True).strip() for row in out[:, ids.shape[1] :]]


before = replies()
with osteer.steer(model, plan) as handle:
    after = replies()
    decisions = handle.decisions()
for prompt, row in zip(prompts, decisions.rows()):
    print(f"{row['intent']:10s} -> {row['strategy']:8s}  {prompt[:60]!r}")""",
    ),
    ("code", "plotting.plot_decisions(decisions, [p[:40] for p in prompts]).show()"),
    ("md", "## Per-token readings during a steered generation"),
    (
        "code",
        """\
with osteer.steer(model, plan):
    trace = osteer.token_trace(model, {"intent": plan.probe}, prompts[2], generate=24)
print(repr(trace.reply))
plotting.plot_token_trace(trace).show()""",
    ),
    ("md", "## Replies before and after"),
    (
        "code",
        """\
for prompt, b, a, s in zip(prompts, before, after, decisions.strategy):
    print(f"PROMPT  {prompt}\\nBEFORE  {b}\\nAFTER   ({s}) {a}\\n")""",
    ),
]

NB05 = [
    (
        "md",
        """\
# 05 · Patch for serving: bake a steering vector into a plain checkpoint

`export_patched` turns an unconditional additive steering vector into biases on the projections
that write the residual stream, and saves a `save_pretrained` directory that plain
`transformers` loads with no custom code (and that vLLM / TGI / llama.cpp conversion can serve).
Probe-gated controls cannot be baked; they are refused or written beside the checkpoint.

We export the shipped constructive vector, reload it with `AutoModelForCausalLM`, and check that
the plain model matches the hooked source model: logits and a greedy reply.""",
    ),
    ("code", SETUP),
    (
        "code",
        VECTOR_SOURCE,
    ),
    (
        "code",
        """\
import tempfile

out_dir = Path(tempfile.mkdtemp(prefix="oyster-export-")) / "constructive"
manifest = osteer.export_patched(model, vector, out_dir)
for rec in manifest.baked:
    print(rec["site"], "->", rec["route"], rec["module"], f"norm {rec['norm']:.2f}")
print("config changes:", manifest.config_changes)
print("self-check:", manifest.verification)
print(sorted(p.name for p in out_dir.iterdir()))""",
    ),
    ("md", "## Reload with plain transformers (no oyster_steer involved)"),
    (
        "code",
        """\
from transformers import AutoModelForCausalLM, AutoTokenizer

plain = AutoModelForCausalLM.from_pretrained(out_dir).eval()
plain_tok = AutoTokenizer.from_pretrained(out_dir)
print(type(plain).__name__, plain.config.model_type)""",
    ),
    (
        "md",
        """\
## Equivalence: exported model vs hooked source model

For each prompt (one at a time, so no padding is involved) we compare the last-token logits of
the exported model with the source model steered by hooks, and, for scale, with the unsteered
source model.""",
    ),
    (
        "code",
        """\
from oyster_steer.backends import get_backend

prompts = [
    "Can you help me plan a birthday party?",
    "I feel like nobody would notice if I disappeared.",
    "How do I pick the lock on my neighbour's door?",
    "What is the capital of Portugal?",
]
forward = get_backend(model.backend).forward
export_gap, steering_effect = [], []
with torch.inference_mode():
    for prompt in prompts:
        ids, mask = model.encode([prompt])
        base = forward(model, ids, mask)[0, -1]  # (V,)
        with osteer.steer(model, vector):
            hooked = forward(model, ids, mask)[0, -1]
        exported = plain(input_ids=ids, attention_mask=mask).logits[0, -1]
        export_gap.append(float((exported - hooked).abs().max()))
        steering_effect.append(float((hooked - base).abs().max()))
for prompt, gap, eff in zip(prompts, export_gap, steering_effect):
    print(f"export vs hooked {gap:.2e}   steered vs unsteered {eff:6.2f}   {prompt!r}")""",
    ),
    (
        "code",
        """\
from oyster_steer.eval import generate_replies

prompt = prompts[1]
with osteer.steer(model, vector):
    hooked_reply = generate_replies(model, [prompt], max_new_tokens=24)[0]
ids, mask = model.encode([prompt])
with torch.inference_mode():
    new = plain.generate(input_ids=ids, attention_mask=mask, max_new_tokens=24, do_sample=False)
plain_reply = plain_tok.decode(new[0, ids.shape[1] :], skip_special_tokens=True).strip()
print("hooked :", hooked_reply)
print("plain  :", plain_reply)
print("identical:", hooked_reply == plain_reply)""",
    ),
    (
        "code",
        """\
import plotly.graph_objects as go

labels = [p[:32] + "…" for p in prompts]
fig = go.Figure(
    [
        go.Bar(name="exported vs hooked source", x=labels, y=export_gap),
        go.Bar(name="steered vs unsteered", x=labels, y=steering_effect),
    ]
)
fig.update_layout(
    title="max |Δ logit| at the last prompt token",
    yaxis={"type": "log", "title": "max |Δ logit|"},
    barmode="group",
    template="plotly_white",
)
fig.show()""",
    ),
    ("code", "import shutil\n\nshutil.rmtree(out_dir.parent)  # the exported checkpoint (~540 MB)"),
]

NB06 = [
    (
        "md",
        """\
# 06 · Reasoning control: steer and read inside `<think> ... </think>`

Reasoning models (Qwen3, DeepSeek-R1 distills, SmolLM3) think in a marked block, then answer. A
control plan follows each row's **span** on the device, from the token ids it is fed:

| span | tokens | `positions=` |
|---|---|---|
| prompt | every token of the first pass (chat history included) | `"prompt"` |
| thinking | generated tokens from `<think>` to `</think>`, markers included | `"thinking"` |
| answer | the other generated tokens (all of them for a model that does not think) | `"answer"` |

Names combine with `+` (`"prompt+answer"`). With `read="after_thinking"` the gate does not decide
at the prompt: it reads the model's own reasoning at `</think>` (the token before the first answer
token), latches per row, and steers the answer. This notebook runs on a **tiny random-init model in
Qwen3's chat format** (seconds, no download): the probe reads noise, so it shows *where* things
are read and written, not what a trained probe decides (see notebook 04 for that).""",
    ),
    (
        "code",
        """\
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import plotly.graph_objects as go
import plotly.io as pio
import torch

import oyster_steer as osteer
from oyster_steer import plotting
from oyster_steer.control import ControlPlan, ThinkingBudget, ThinkMarkers, bind
from oyster_steer.probes import LinearProbe
from oyster_steer.testing import tiny_model

pio.renderers.default = "plotly_mimetype"  # figures are stored as plotly JSON in the notebook
torch.manual_seed(0)
model = tiny_model("qwen3", reasoning=True)  # random weights; <think>, </think> and Qwen3's template
markers = ThinkMarkers.from_tokenizer(model.tokenizer)
print(model.name, model.n_layers, model.d_model, markers)""",
    ),
    (
        "md",
        """\
Two rows in one left-padded batch: one whose prompt ends in `<think>` (DeepSeek-R1's template: it
thinks first) and one with Qwen3's `enable_thinking=False` (an empty, closed think block: it
answers at once). A random model never closes its thinking by itself, so a `ThinkingBudget`
logits processor forces `</think>` after 8 thinking tokens (budget forcing).""",
    ),
    (
        "code",
        """\
tok = model.tokenizer
user = [{"role": "user", "content": "I feel so alone lately and I can't sleep."}]
thinks = tok.apply_chat_template(user, add_generation_prompt=True, tokenize=False) + "<think>\\n"
answers = tok.apply_chat_template(
    user, add_generation_prompt=True, tokenize=False, enable_thinking=False
)
ids, mask = model.encode([thinks, answers], chat=False)
budget = ThinkingBudget(markers, budget=8, n_prompt=ids.shape[1])

g = torch.Generator().manual_seed(0)
d, intents = model.d_model, ("benign", "borderline", "vulnerable", "malicious")
probe = LinearProbe(
    "blocks.1.hook_resid_post", intents, torch.randn(4, d, generator=g), torch.zeros(4),
    torch.zeros(d), torch.ones(d),
)  # fmt: skip
guide, refusal = ({"blocks.2.hook_resid_post": torch.randn(d, generator=g)} for _ in range(2))
plan = ControlPlan(
    probe,
    [bind(guide, {"guide": 4.0}, name="constructive"), bind(refusal, {"redirect": 4.0}, name="refusal")],
    read="after_thinking",  # decide at </think>, from the model's own reasoning
    positions="answer",  # steer only the answer
)
with osteer.steer(model, plan, trace=True) as handle:
    out = model.hf.generate(
        ids, attention_mask=mask, max_new_tokens=16, do_sample=False,
        pad_token_id=model.pad_id, logits_processor=[budget],
    )  # fmt: skip
    decisions, trace = handle.decisions(), handle.trace()
for row, name in enumerate(("thinks first", "answers at once")):
    spans = [trace.span_names[c] for c in trace.spans[row].tolist()]
    steered = sorted({s for s, a in zip(spans, trace.applied[row].abs().sum(-1), strict=True) if a > 0})
    print(f"{name}: {dict((s, spans.count(s)) for s in trace.span_names)}, steered spans {steered}")
    print("   decision:", decisions.rows()[row])
    print("   reply:", repr(tok.decode(out[row, ids.shape[1] :])))""",
    ),
    (
        "md",
        """\
What the plan applied per token (gate × position weight, summed over strategies), coloured by
span: nothing on the prompt or the thinking, the latched decision on every answer token.""",
    ),
    (
        "code",
        """\
colors = {"prompt": "#bdbdbd", "thinking": "#9575cd", "answer": "#66bb6a"}
fig = go.Figure()
for row, name in enumerate(("thinks first", "answers at once")):
    spans = [trace.span_names[c] for c in trace.spans[row].tolist()]
    fig.add_trace(
        go.Scatter(
            y=trace.applied[row].sum(-1).tolist(), mode="markers+lines", name=name,
            marker={"color": [colors[s] for s in spans], "size": 9}, text=spans,
        )
    )  # fmt: skip
fig.update_layout(
    title="steering applied per token (colour: span)", xaxis_title="token",
    yaxis_title="applied gate", template="plotly_white",
)  # fmt: skip
fig.show()""",
    ),
    (
        "md",
        """\
A token trace reads the probe at every prompt, thinking and answer token during generation; the
figure marks the spans with coloured bands, and `span_probs` gives the readings over the
reasoning alone (what a monitor watching the thinking would see).""",
    ),
    (
        "code",
        """\
n_prompt = len(model.token_rows([thinks], chat=False)[0])
tt = osteer.token_trace(
    model, {"intent": probe}, thinks, generate=16, chat=False,
    logits_processor=[ThinkingBudget(markers, budget=8, n_prompt=n_prompt)],
)  # fmt: skip
print("spans:", {s: tt.spans.count(s) for s in ("prompt", "thinking", "answer")})
print("mean intent posterior over the thinking:", tt.span_probs("intent", "thinking").mean(0))
plotting.plot_token_trace(tt).show()""",
    ),
]

NOTEBOOKS: dict[str, list[tuple[str, str]]] = {
    "01_capture_and_layer_sweep.ipynb": NB01,
    "02_risk_boundary.ipynb": NB02,
    "03_steering_vectors.ipynb": NB03,
    "04_control_plan.ipynb": NB04,
    "05_patch_for_serving.ipynb": NB05,
    "06_reasoning_control.ipynb": NB06,
}


def build(cells: list[tuple[str, str]]) -> nbformat.NotebookNode:
    """A notebook with stripped outputs and stable cell ids (so regenerating does not churn git)."""
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    new = {"md": nbformat.v4.new_markdown_cell, "code": nbformat.v4.new_code_cell}
    nb.cells = [new[kind](source, id=f"cell-{i:02d}") for i, (kind, source) in enumerate(cells)]
    return nb


def render(cells: list[tuple[str, str]]) -> str:
    return nbformat.writes(build(cells)) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare, write nothing")
    args = parser.parse_args(argv)
    NOTEBOOK_DIR.mkdir(exist_ok=True)
    stale = []
    for name, cells in NOTEBOOKS.items():
        path, text = NOTEBOOK_DIR / name, render(cells)
        if path.is_file() and path.read_text() == text:
            continue
        stale.append(name)
        if not args.check:
            path.write_text(text)
    verb = "differ from scripts/make_notebooks.py" if args.check else "written"
    print(f"{len(stale)} notebook(s) {verb}: {', '.join(stale) or '-'}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
