"""Planning speed: one model-predictive control step of each planner, with the demo model and with the
true simulator (the `oracle`), side by side.

    python benchmarks/planning_speed.py [--run runs/demo/model] [--steps 30] [--samples 350] [--iterations 5]
                                        [--horizon 15]

One control step = `iterations` batched rollouts of `samples` action sequences of `horizon` steps
(issue 6's budget: 5 x 350 x 15, to fit HalfCheetah's 50 ms control period). Each planner acts for
`--steps` control steps from a Tabletop start; the table gives p50/p99 of a step in ms and imagined
steps per second, for the run's model, for untrained ensembles at the `tiny` and `small` presets (a
step costs the same trained or not: what size fits the budget), and for the oracle. Each ensemble row
comes twice: `particles=members` (every candidate imagined by all E members, what the uncertainty
penalty and the safety filter need) and `particles=one` (each candidate by one member in turn, E times
less arithmetic). The oracle row is the same planner over MuJoCo (batched, threaded rollouts): what
planning with the simulator itself would cost. Prints a table and writes
benchmarks/results/planning_speed.json. Needs the demo model: run `make demo` first.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

RESULTS = Path(__file__).parent / "results"


def control_steps(planner, model, start_obs, sim_state, steps: int) -> list[float]:
    """Milliseconds of each of `steps` planning calls, the state advanced by the model in between."""
    o = torch.as_tensor(start_obs, dtype=torch.float32, device=model.device)[None, None]
    state = model.observe(o, torch.zeros(1, 0, model.spec.action_dim, device=model.device),
                          sim_state=torch.from_numpy(sim_state)[None])
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        action = planner.plan(state)
        times.append((time.perf_counter() - t0) * 1e3)
        with torch.no_grad():
            state, _ = model.step(state, action[None])
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", default="runs/demo/model")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--samples", type=int, default=350)
    ap.add_argument("--iterations", type=int, default=5)
    ap.add_argument("--horizon", type=int, default=15)
    ap.add_argument("--oracle-steps", type=int, default=5, help="control steps for the (slow) oracle rows")
    ap.add_argument("--out", default=str(RESULTS / "planning_speed.json"))
    args = ap.parse_args()
    if not Path(args.run).exists():
        sys.exit(f"error: no model at {args.run}; run `make demo` first (or pass --run RUN)")
    import wmkit
    from wmkit.models import reference_model

    model = wmkit.load_model(args.run)
    oracle = reference_model("oracle", model.spec.world)
    world = wmkit.make(model.spec.world)
    obs, _ = world.reset(seed=0)
    sim = world.get_state()
    budget = {"horizon": args.horizon, "samples": args.samples, "iterations": args.iterations}
    extra = {"cem": {"elites": 35}, "icem": {"elites": 35}, "mppi": {}}
    from wmkit.models import make_model, preset_config

    # untrained ensembles at each preset: a step costs the same trained or not, so these show what size fits
    presets = []
    for preset in ("tiny", "small"):
        fresh = make_model("ensemble", model.spec, **preset_config("ensemble", preset)).eval()
        fresh.preset = f"ensemble/{preset}"
        presets.append((fresh, args.steps))
    model.preset = f"{model.family} (the run)"
    oracle.preset = "oracle"
    rows = []
    for runner, steps in ((model, args.steps), *presets, (oracle, args.oracle_steps)):
        for name, particles in ((n, p) for n in ("cem", "icem", "mppi")
                                for p in (("members", "one") if hasattr(runner, "one_member_each") else ("members",))):
            planner = wmkit.make_planner(name, runner, **budget, **extra[name], particles=particles)
            control_steps(planner, runner, obs, sim, 1)  # warm-up
            ms = np.asarray(control_steps(planner, runner, obs, sim, steps))
            imagined = args.iterations * args.samples * args.horizon  # at most: iCEM's population shrinks
            rows.append({"planner": name, "particles": particles, "model": runner.preset, "steps": steps,
                         "p50_ms": round(float(np.percentile(ms, 50)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2),
                         "imagined_steps_per_s": round(imagined / (float(np.median(ms)) / 1e3))})
    machine = {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
               "torch_threads": torch.get_num_threads()}
    result = {"benchmark": "planning_speed", "model": args.run, "budget": budget, "machine": machine,
              "target": "one CEM step (5 x 350 x 15) with the ensemble <= 50 ms", "rows": rows}
    print(f"planning speed: {args.run}, {args.iterations} iterations x {args.samples} samples x horizon "
          f"{args.horizon}, {machine['cpus']} CPUs")
    print(f"{'planner':>8} {'particles':>9} {'model':>20} {'steps':>6} {'p50 ms':>9} {'p99 ms':>9} {'imagined steps/s':>17}")
    for r in rows:
        print(f"{r['planner']:>8} {r['particles']:>9} {r['model']:>20} {r['steps']:>6} {r['p50_ms']:>9.2f} {r['p99_ms']:>9.2f} "
              f"{r['imagined_steps_per_s']:>17,}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
