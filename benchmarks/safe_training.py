"""Safer training: the Dyna agent on Tabletop's push-to-goal task with and without the safety filter,
side by side in one run: success rate, and cups dropped in the true world while learning.

    python benchmarks/safe_training.py [--steps 14000] [--seeds 0 1 2] [--max-risk 0.1] [--planner cem]
        [--preset tiny] [--seed-episodes 50] [--seed-policy noise] [--train-steps 2000]

Both runs are `wmkit agent` on Tabletop-v0 (control/dyna.py): `--seed-episodes` episodes of the seed
policy (by default 50 of coloured noise: logged exploration, 10,000 steps, in which the cup meets the
pusher and sometimes falls), then a tiny ensemble retrained on all the data before each planned
episode. The filtered run rejects plans whose imagined futures take the cup off the table
(`cup_leaves_table`) in more than `--max-risk` of the ensemble's members. The seed episodes are the
same in both runs (same seed); the counts are over the planned episodes, the ones the filter can
change: episodes, cups dropped (episodes that ended with the cup on the floor), success rate (the cup
rests within 5 cm of the spot) and mean return. Writes benchmarks/results/safe_training.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from pathlib import Path

import numpy as np
import torch

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=14000, help="environment steps per run, the seed episodes included")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--max-risk", type=float, default=0.1)
    ap.add_argument("--planner", default="cem")
    ap.add_argument("--preset", default="tiny", help="the agent's ensemble preset (tiny, small, base)")
    ap.add_argument("--seed-episodes", type=int, default=50)
    ap.add_argument("--seed-policy", default="noise", help="random or noise (coloured noise)")
    ap.add_argument("--train-steps", type=int, default=2000, help="training steps of each retrain")
    ap.add_argument("--out", default=str(RESULTS / "safe_training.json"))
    args = ap.parse_args()
    from wmkit.control.dyna import AgentConfig, run_agent

    torch.set_num_threads(1)
    rows = []
    for safety in (None, "cup_leaves_table"):
        for seed in args.seeds:
            with tempfile.TemporaryDirectory() as tmp:
                log = run_agent(AgentConfig(world="Tabletop-v0", steps=args.steps, planner=args.planner, safety=safety,
                                            max_risk=args.max_risk, seed=seed, model_preset=args.preset,
                                            seed_episodes=args.seed_episodes, seed_policy=args.seed_policy,
                                            train_steps=args.train_steps),
                                Path(tmp) / "agent", say=lambda *_: None)
            planned = [r for r in log if r["acted"] == args.planner]
            seeded = log[:args.seed_episodes]
            rows.append({"safety": safety, "seed": seed, "episodes": len(planned),
                         "seed_episodes_dropped": sum(r["terminated"] for r in seeded),
                         "dropped": sum(r["terminated"] for r in planned),
                         "success_rate": float(np.mean([bool(r["success"]) for r in planned])),
                         "mean_return": float(np.mean([r["return"] for r in planned])), "log": log})
            r = rows[-1]
            print(f"safety={safety} seed {seed}: {r['episodes']} planned episodes, {r['dropped']} dropped, "
                  f"success {r['success_rate']:.2f} (seed episodes: {r['seed_episodes_dropped']} of "
                  f"{args.seed_episodes} dropped)", flush=True)
    machine = {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()}
    result = {"benchmark": "safe_training", "steps": args.steps, "max_risk": args.max_risk, "preset": args.preset,
              "seed_episodes": args.seed_episodes, "seed_policy": args.seed_policy, "train_steps": args.train_steps,
              "machine": machine, "rows": rows}
    print(f"\nsafer training on Tabletop-v0: {args.steps} environment steps per run ({args.seed_episodes} seed "
          f"episodes of {args.seed_policy} first), seeds {args.seeds}; planned episodes, mean per run")
    print(f"{'safety filter':>16} {'episodes':>9} {'cups dropped':>13} {'success rate':>13} {'return':>9}")
    for safety in (None, "cup_leaves_table"):
        mine = [r for r in rows if r["safety"] == safety]
        print(f"{'on' if safety else 'off':>16} {np.mean([r['episodes'] for r in mine]):>9.1f} "
              f"{np.mean([r['dropped'] for r in mine]):>13.1f} {np.mean([r['success_rate'] for r in mine]):>13.2f} "
              f"{np.mean([r['mean_return'] for r in mine]):>9.1f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
