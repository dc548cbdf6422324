"""Sample efficiency: wmkit's Dyna loop with model-predictive control against stable-baselines3 SAC,
side by side in one run, return against environment steps.

    python benchmarks/sample_efficiency.py [--worlds Pendulum-v1 InvertedPendulum-v5 Reacher-v5]
        [--seeds 0 1 2] [--wmkit-steps 5000] [--sac-steps 50000] [--planner cem] [--oracle-episodes 0]
        [--eval-episodes 5] [--max-episode-steps N] [--preset tiny] [--samples 200] [--iterations 4]
        [--train-steps 1000] [--terminal-value] [--value-from imagination] [--critics 1] [--value-pessimism 0]
        [--uncertainty-penalty 0] [--known-task] [--policy-prior 0] [--imagination-updates 500]
        [--merge JSON ...]

Per world and seed: `wmkit agent` (control/dyna.py: one random episode, then a tiny ensemble retrained
on all data before each planned episode) for `--wmkit-steps` environment steps, and SAC (SB3's
defaults, one torch thread) for `--sac-steps`. Each method's return at N steps is read two ways:
'episodes', the mean return of its last training episodes that finished by N (3 for wmkit, 10 for
SAC: its learning curve), and 'evaluated', the mean return of `--eval-episodes` episodes of the agent
as it stands at N steps (SAC's deterministic policy; wmkit's last planner over its last model, or
the actor without exploring), never trained on, from the same starts for both methods: the field's
usual protocol (SB3's EvalCallback, TD-MPC2's and DreamerV3's evaluation episodes). The learning
curve alone misreads long episodes: InvertedPendulum's 1,000-step episode that ends 60 steps past
the budget does not count, so the three read are the ones before it. The table gives, per world,
mean and spread over seeds of: a random policy, wmkit at its budget, SAC at wmkit's budget, and SAC
at its own budget; the issue's target is wmkit at 5k steps reaching SAC's return at 50k, read from
the evaluations (from the learning curves with `--eval-episodes 0`). `--oracle-episodes N` adds the
same planner over the true simulator (the planning gap: learned-model return relative to the
simulator's, both over random, from the means over seeds; with evaluations, from the starts of the
first N evaluation episodes; printed beside issue 6's target for the world, 0.9 on Pendulum and Reacher
and 0.5 on HalfCheetah, and each seed's own gap below it);
`--terminal-value` has the planner add a critic learned in imagination at the end of each plan
(AgentConfig.terminal_value; `--value-from data`: critics fitted by TD to the real transitions instead),
`--policy-prior K` has the actor of that actor-critic propose K plans at every control step beside the
planner's samples (TD-MPC2's policy samples), `--critics N --value-pessimism K` the mean of N critics less K times their spread;
`--known-task` has it score plans by the world's own reward function of the observation (Reacher,
InvertedPendulum, HalfCheetah: World.known_task) instead of the model's reward head;
`--sac-steps 0` leaves SAC
out (e.g. HalfCheetah's planning gap alone, with `--max-episode-steps 200`). Writes
benchmarks/results/sample_efficiency.json with every curve (`--out` elsewhere). Seeds are independent:
run one process per seed side by side (`--seeds 1 --out se_s1.json`, ...), then
`--merge se_s0.json se_s1.json ... --out se.json` runs nothing and writes the one table over all of
them (it refuses runs whose settings differ, or a seed given twice).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

RESULTS = Path(__file__).parent / "results"
nan = float("nan")


def return_at(curve: list[tuple[int, float]], steps: int, last: int = 3) -> float:
    """Mean return of the last `last` episodes that finished by `steps` environment steps."""
    done = [r for s, r in curve if s <= steps]
    return float(np.mean(done[-last:])) if done else float("nan")


def run_wmkit(world: str, steps: int, seed: int, max_steps: int | None = None, **agent) -> tuple[list, list, float]:
    """(learning curve [(env steps, return)], evaluation returns of the agent at `steps`, seconds); `agent`:
    further AgentConfig fields (planner, model_preset, samples, ...)."""
    from wmkit.control.dyna import AgentConfig, run_agent

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        rows = run_agent(AgentConfig(world=world, steps=steps, seed=seed, max_episode_steps=max_steps, **agent),
                         Path(tmp) / "agent", say=lambda *_: None)
    curve = [(r["env_steps"], r["return"]) for r in rows if not r["eval"]]
    return curve, [r["return"] for r in rows if r["eval"]], time.perf_counter() - t0


def evaluation_starts(seed: int, episodes: int) -> list[int]:
    """The reset seeds of the agent's evaluation episodes (`collect`'s seeding under the Dyna loop's offset),
    so that SAC is evaluated from the very same starts."""
    from wmkit.control.dyna import EVAL_SEED_OFFSET
    from wmkit.data.collect import episode_seed

    return [episode_seed(seed + EVAL_SEED_OFFSET, i) for i in range(episodes)]


def run_sac(world: str, steps: int, seed: int, max_steps: int | None = None, eval_at: tuple[int, ...] = (),
            eval_episodes: int = 0) -> tuple[list, dict, float]:
    """(learning curve, {step: evaluation returns of the deterministic policy at that step}, seconds)."""
    import wmkit
    from stable_baselines3 import SAC
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.monitor import Monitor

    curve, evals = [], {}
    starts = evaluation_starts(seed, eval_episodes)

    class Record(BaseCallback):
        def _on_step(self) -> bool:
            for info in self.locals.get("infos", []):
                if "episode" in info:
                    curve.append((self.num_timesteps, float(info["episode"]["r"])))
            if starts and self.num_timesteps in eval_at:
                evals[self.num_timesteps] = play(world, lambda obs, _: self.model.predict(obs, deterministic=True)[0],
                                                 starts, max_steps)
            return True

    if steps == 0:
        return [], {}, 0.0
    env = Monitor(wmkit.make(world, max_episode_steps=max_steps))
    t0 = time.perf_counter()
    SAC("MlpPolicy", env, seed=seed, verbose=0).learn(steps, callback=Record())
    env.close()
    return curve, evals, time.perf_counter() - t0


def play(world: str, act, starts: list[int], max_steps: int | None = None, action_seed: int | None = None) -> list[float]:
    """The return of one episode from each reset seed in `starts`, acting with `act(obs, env)` (the env's
    action space seeded with `action_seed` first, where given)."""
    import wmkit

    env, out = wmkit.make(world, max_episode_steps=max_steps), []
    if action_seed is not None:
        env.action_space.seed(action_seed)
    for start in starts:
        obs, _ = env.reset(seed=start)
        ret, done = 0.0, False
        while not done:
            obs, r, term, trunc, _ = env.step(act(obs, env))
            ret, done = ret + float(r), term or trunc
        out.append(ret)
    env.close()
    return out


def random_return(world: str, episodes: int, seed: int, max_steps: int | None = None) -> float:
    starts = [seed * 1000 + i for i in range(episodes)]
    return float(np.mean(play(world, lambda _, env: env.action_space.sample(), starts, max_steps, action_seed=seed)))


def oracle_return(world: str, planner: str, episodes: int, seed: int, max_steps: int | None = None,
                  same_starts: bool = False, samples: int = 200, iterations: int = 4) -> float:
    """The agent's planner with the true simulator as its model, from the same kind of starts (with
    `same_starts`, from the very starts of the agent's first evaluation episodes)."""
    import wmkit
    from wmkit.control.dyna import EVAL_SEED_OFFSET, PlannerPolicy
    from wmkit.data.collect import collect
    from wmkit.models import reference_model

    stats = []
    policy = PlannerPolicy(wmkit.make_planner(planner, reference_model("oracle", world), horizon=15, samples=samples,
                                              iterations=iterations, seed=seed))
    with tempfile.TemporaryDirectory() as tmp:
        collect(world, episodes, Path(tmp) / "d", policy=policy, seed=seed + (EVAL_SEED_OFFSET if same_starts else 100),
                max_steps=max_steps, progress=False, stats=stats)
    return float(np.mean([s["return"] for s in stats]))


def mean_spread(values) -> tuple[float, float]:
    v = np.asarray(values, dtype=float)
    if np.isnan(v).all():  # a method this run left out (e.g. SAC with --sac-steps 0)
        return nan, nan
    return float(np.nanmean(v)), float(np.nanstd(v))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--worlds", nargs="+", default=["Pendulum-v1", "InvertedPendulum-v5", "Reacher-v5"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--wmkit-steps", type=int, default=5000)
    ap.add_argument("--sac-steps", type=int, default=50000)
    ap.add_argument("--planner", default="cem")
    ap.add_argument("--oracle-episodes", type=int, default=0)
    ap.add_argument("--eval-episodes", type=int, default=5,
                    help="evaluation episodes of each agent as it stands at each budget (0: learning curves only)")
    ap.add_argument("--max-episode-steps", type=int, default=None, help="cap episodes (e.g. 200 for HalfCheetah)")
    ap.add_argument("--preset", default="tiny", help="the agent's ensemble preset")
    ap.add_argument("--samples", type=int, default=200, help="action sequences the planner imagines per iteration")
    ap.add_argument("--iterations", type=int, default=4, help="planner iterations per control step")
    ap.add_argument("--train-steps", type=int, default=1000, help="training steps of each retrain of the model")
    ap.add_argument("--terminal-value", action="store_true", help="the planner adds a learned value at the horizon")
    ap.add_argument("--value-from", default="imagination", choices=("imagination", "data"),
                    help="where the terminal value is learned: inside each model, or from the real transitions")
    ap.add_argument("--imagination-updates", type=int, default=500,
                    help="--terminal-value or --policy-prior: actor-critic updates inside each new model")
    ap.add_argument("--policy-prior", type=int, default=0,
                    help="the planner also imagines this many plans proposed by an actor trained in imagination")
    ap.add_argument("--critics", type=int, default=1, help="critics of the terminal value, trained side by side")
    ap.add_argument("--value-pessimism", type=float, default=0.0,
                    help="the terminal value is the critics' mean less this times their spread")
    ap.add_argument("--uncertainty-penalty", type=float, default=0.0,
                    help="the planner subtracts this times the members' disagreement at each imagined step")
    ap.add_argument("--known-task", action="store_true", help="plans scored by the world's own reward function")
    ap.add_argument("--out", default=str(RESULTS / "sample_efficiency.json"))
    ap.add_argument("--merge", nargs="+", metavar="JSON",
                    help="run nothing: one table from these results of the same settings over different seeds")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.merge:
        return merge(args.merge, args.out)
    rows, evaluated = [], args.eval_episodes > 0
    settings = {"wmkit_steps": args.wmkit_steps, "sac_steps": args.sac_steps, "seeds": args.seeds,
                "agent": agent_fields(args)}
    for world in args.worlds:
        per_seed = []
        for seed in args.seeds:
            cap = args.max_episode_steps
            wm_curve, wm_eval, wm_s = run_wmkit(world, args.wmkit_steps, seed, cap, **agent_fields(args))
            sac_curve, sac_eval, sac_s = run_sac(world, args.sac_steps, seed, cap, (args.wmkit_steps, args.sac_steps),
                                                 args.eval_episodes)
            mean = lambda v: float(np.mean(v)) if v else nan  # noqa: E731
            per_seed.append({
                "seed": seed, "random": random_return(world, 5, seed, cap),
                "wmkit": return_at(wm_curve, args.wmkit_steps), "sac_at_wmkit_steps": return_at(sac_curve, args.wmkit_steps),
                "sac": return_at(sac_curve, args.sac_steps, last=10),
                "wmkit_eval": mean(wm_eval), "sac_eval_at_wmkit_steps": mean(sac_eval.get(args.wmkit_steps)),
                "sac_eval": mean(sac_eval.get(args.sac_steps)),
                "oracle": (oracle_return(world, args.planner, args.oracle_episodes, seed, cap, args.eval_episodes > 0,
                                         args.samples, args.iterations)
                           if args.oracle_episodes else None),
                "wmkit_seconds": round(wm_s, 1), "sac_seconds": round(sac_s, 1),
                "wmkit_curve": wm_curve, "sac_curve": sac_curve,
                "wmkit_eval_returns": wm_eval, "sac_eval_returns": {str(k): v for k, v in sac_eval.items()}})
            last = per_seed[-1]
            print(f"{world} seed {seed}: wmkit {last['wmkit']:.1f} (evaluated {last['wmkit_eval']:.1f}) at "
                  f"{args.wmkit_steps} steps ({wm_s:.0f} s), SAC {last['sac']:.1f} (evaluated {last['sac_eval']:.1f}) "
                  f"at {args.sac_steps} ({sac_s:.0f} s)", flush=True)
            write(args.out, settings, [*rows, summarise(world, per_seed, evaluated)], complete=False)  # a long run keeps what it has
        rows.append(summarise(world, per_seed, evaluated))
    write(args.out, settings, rows, complete=True)
    print_table(rows, args.wmkit_steps, args.sac_steps, args.seeds, args.eval_episodes)
    print(f"wrote {args.out}")


def print_table(rows: list[dict], wmkit_steps: int, sac_steps: int, seeds: list[int], eval_episodes: int) -> None:
    k = lambda n: f"{n / 1000:g}k"  # noqa: E731
    print(f"\nsample efficiency: mean +- spread over seeds {seeds}; 'episodes': the return of each method's "
          f"last training episodes by that step; 'evaluated': {eval_episodes} episodes of the agent as it "
          f"stands at that step, from the same starts for both")
    print(f"{'world':>20} {'protocol':>9} {'random':>16} {'wmkit @' + k(wmkit_steps):>16} "
          f"{'SAC @' + k(wmkit_steps):>16} {'SAC @' + k(sac_steps):>16} {'oracle MPC':>16} {'gap':>6} "
          f"{'target':>7} {'gap target':>10}")
    cell = lambda v: f"{v[0]:9.1f} +-{v[1]:5.1f}"  # noqa: E731
    for r in rows:
        gap = r.get("planning_gap")
        protocols = [("episodes", "")] + ([("evaluated", "_eval")] if eval_episodes else [])
        for name, sfx in protocols:
            sac_early = r["sac_at_wmkit_steps" if not sfx else "sac_eval_at_wmkit_steps"]
            headline = name == protocols[-1][0]  # the gap and the target are read from the last protocol
            print(f"{r['world'] if not sfx else '':>20} {name:>9} {cell(r['random']):>16} {cell(r['wmkit' + sfx]):>16} "
                  f"{cell(sac_early):>16} {cell(r['sac' + sfx]):>16} "
                  f"{cell(r['oracle']) if 'oracle' in r and headline else '-':>16} "
                  f"{'-' if gap is None or not headline else f'{gap:.2f}':>6} "
                  f"{verdict(r['target_met']) if headline else '':>7} "
                  f"{gap_verdict(r) if headline else '':>10}")
        seed_gaps = r.get("planning_gap_per_seed") or []
        if len(seed_gaps) > 1:
            print(f"{'':>20} {'gap per seed':>26}: " + " / ".join('-' if g is None else f"{g:.2f}" for g in seed_gaps))


def verdict(met: bool | None) -> str:
    return "-" if met is None else "met" if met else "not met"


def gap_verdict(row: dict) -> str:
    """'>=0.5 met' where the world has a planning-gap target and the gap was measured."""
    return "-" if "gap_target" not in row else f">={row['gap_target']:g} {verdict(row['gap_target_met'])}"


def summarise(world: str, per_seed: list[dict], evaluated: bool) -> dict:
    row = {"world": world, "seeds": per_seed}
    for key in ("random", "wmkit", "sac_at_wmkit_steps", "sac", "wmkit_eval", "sac_eval_at_wmkit_steps", "sac_eval"):
        row[key] = mean_spread([s[key] for s in per_seed])
    wmkit, sac = ("wmkit_eval", "sac_eval") if evaluated else ("wmkit", "sac")
    if any(s["oracle"] is not None for s in per_seed):
        row["oracle"] = mean_spread([nan if s["oracle"] is None else s["oracle"] for s in per_seed])
        span = row["oracle"][0] - row["random"][0]
        row["planning_gap"] = (row[wmkit][0] - row["random"][0]) / span if span > 0 else None
        # each seed's own gap too: the oracle's return moves between seeds' starts (HalfCheetah: 995 and 1,609)
        row["planning_gap_per_seed"] = [None if s["oracle"] is None or s["oracle"] <= s["random"] else
                                        (s[wmkit] - s["random"]) / (s["oracle"] - s["random"]) for s in per_seed]
        if world in GAP_TARGETS and row["planning_gap"] is not None:
            row["gap_target"] = GAP_TARGETS[world]
            row["gap_target_met"] = bool(row["planning_gap"] >= GAP_TARGETS[world])
    # the sample-efficiency target needs SAC at its budget; without it (--sac-steps 0) it is not measured
    row["target_met"] = None if np.isnan(row[sac][0]) else bool(row[wmkit][0] >= row[sac][0])
    row["target_protocol"] = "evaluated" if evaluated else "episodes"
    return row


def agent_fields(args) -> dict:
    """The AgentConfig fields this run sets (the same dict goes into the JSON as `agent`)."""
    return {"planner": args.planner, "model_preset": args.preset, "samples": args.samples,
            "iterations": args.iterations, "train_steps": args.train_steps, "terminal_value": args.terminal_value,
            "value_from": args.value_from, "imagination_updates": args.imagination_updates,
            "policy_prior": args.policy_prior, "critics": args.critics,
            "value_pessimism": args.value_pessimism,
            "uncertainty_penalty": args.uncertainty_penalty, "known_task": args.known_task,
            "eval_episodes": args.eval_episodes}


def write(out: str, settings: dict, rows: list[dict], complete: bool) -> dict:
    """`settings`: wmkit_steps, sac_steps, seeds and agent (agent_fields) of the run."""
    machine = {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()}
    result = {"benchmark": "sample_efficiency", "complete": complete, **settings, "machine": machine,
              "target": f"wmkit at {settings['wmkit_steps']} steps >= SAC at {settings['sac_steps']} steps",
              "rows": rows}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(result, indent=2))
    return result


GAP_TARGETS = {"Pendulum-v1": 0.9, "Reacher-v5": 0.9, "HalfCheetah-v5": 0.5}  # issue 6's planning gap

SAME = ("wmkit_steps", "sac_steps", "agent")  # what runs must share to be merged


def settings_of(run: dict) -> dict:
    """A result's settings as one flat dict: the step budgets and the agent's fields."""
    return {"wmkit_steps": run.get("wmkit_steps"), "sac_steps": run.get("sac_steps")} | dict(run.get("agent") or {})


def merge(paths: list[str], out: str) -> None:
    """One table from runs of the same settings over different seeds (e.g. one process per seed, side by
    side on the cores there are): their per-seed results, summarised afresh, written to `out`."""
    runs = []
    for path in paths:
        try:
            run = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise SystemExit(f"--merge: cannot read {path} ({e}); give JSON files this benchmark wrote") from e
        if run.get("benchmark") != "sample_efficiency":
            raise SystemExit(f"--merge: {path} is not a sample_efficiency result (benchmark: {run.get('benchmark')!r})")
        if not run.get("complete"):
            print(f"note: {path} is an unfinished run; merging the seeds it has finished")
        first_path, first = runs[0] if runs else (path, run)
        mine, ref = settings_of(run), settings_of(first)
        differ = {k: (mine.get(k), ref.get(k)) for k in mine | ref if mine.get(k) != ref.get(k)}
        if differ:
            said = ", ".join(f"{k}={a!r} against {b!r}" for k, (a, b) in differ.items())
            raise SystemExit(f"--merge: {path} differs from {first_path} in {said}; merge only runs of the same "
                             f"settings")
        runs.append((path, run))
    if not runs:
        raise SystemExit("--merge: give at least one JSON file")
    per_world: dict[str, dict[int, dict]] = {}
    for path, run in runs:
        for row in run["rows"]:
            for seed_result in row["seeds"]:
                seeds = per_world.setdefault(row["world"], {})
                if seed_result["seed"] in seeds:
                    raise SystemExit(f"--merge: {row['world']} seed {seed_result['seed']} is in more than one file "
                                     f"(again in {path}); give each seed once")
                seeds[seed_result["seed"]] = seed_result
    evaluated = bool(runs[0][1]["agent"].get("eval_episodes"))
    rows = [summarise(world, [seeds[k] for k in sorted(seeds)], evaluated) for world, seeds in per_world.items()]
    all_seeds = sorted({k for seeds in per_world.values() for k in seeds})
    settings = {key: runs[0][1][key] for key in SAME} | {"seeds": all_seeds, "merged_from": [p for p, _ in runs]}
    write(out, settings, rows, complete=all(run.get("complete") for _, run in runs))
    print_table(rows, settings["wmkit_steps"], settings["sac_steps"], all_seeds, runs[0][1]["agent"]["eval_episodes"])
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
