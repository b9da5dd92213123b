"""Run one ``oyster-steer`` command in-process and print its CPU and wall seconds (and load).

With ``--profile OUT`` the command runs under ``cProfile`` (wall-clock timer, or CPU time with
``--cpu-timer``) and the stats go to OUT, for "where the time goes". To time an older version,
put its package first on ``PYTHONPATH`` (e.g. ``git archive <commit> oyster_steer | tar -x -C
/tmp/old``); the first printed field says which package ran.

    python benchmarks/cli_run.py --threads 1 -- vector-results --n-per-intent 8 --quiet --out runs/vr.md
    python benchmarks/cli_run.py --profile runs/ship.prof -- train-vector --shipped --out-dir runs/ship --quiet
"""

from __future__ import annotations

import argparse
import cProfile
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--profile", default=None, help="write cProfile stats here")
    p.add_argument("--cpu-timer", action="store_true", help="profile in CPU time, not wall time")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- then the oyster-steer arguments")
    args = p.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    import torch

    torch.set_num_threads(args.threads)
    import oyster_steer
    from oyster_steer.cli import main as cli

    wall, cpu = time.perf_counter(), time.process_time()
    if args.profile:
        prof = cProfile.Profile(time.process_time) if args.cpu_timer else cProfile.Profile()
        rc = prof.runcall(cli, command)
        prof.dump_stats(args.profile)
    else:
        rc = cli(command)
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"{oyster_steer.__file__} rc={rc} wall={time.perf_counter() - wall:.1f}s "
        f"cpu={time.process_time() - cpu:.1f}s load={load}",
        flush=True,
    )
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
