"""Rebind a control pack's first vector to the "guide" strategy only (the Qwen experiment in RESULTS.md).

Usage:
    python scripts/plan_guide_only.py runs/demo-qwen/artifacts/<fingerprint>/control.safetensors \
        runs/demo-qwen/artifacts/<fingerprint>/control-guide.safetensors
"""

from __future__ import annotations

import sys

import oyster_steer as osteer


def main(src: str, out: str) -> None:
    plan = osteer.load_plan(src)
    first = plan.bindings[0]
    guide = osteer.bind(
        dict(first.directions), {"guide": first.strengths["guide"]}, name=first.name
    )
    rebound = plan.replace(bindings=[guide])
    osteer.save_plan(rebound, out)
    print(f"{out}: {guide.name} -> {guide.strengths}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
