"""Training inside the model: a stable-baselines3 agent learns only in `wmkit.DreamEnv`, then acts in
the true world, beside a random policy and the same agent trained as long in the true world.

    python benchmarks/dream_training.py [--world Pendulum-v1] [--episodes 30] [--model-steps 3000]
                                        [--agent-steps 10000] [--eval-episodes 10] [--seed 0]

Steps: collect `--episodes` random-action episodes, train an ensemble on them, train SAC (SB3's
defaults, one torch thread) for `--agent-steps` steps inside `DreamEnv(model, data)`, never touching
the true world, then run it in the true world for `--eval-episodes` episodes. Side by side: a random
policy, and SAC trained for the same number of steps in the true world (which used that many real
steps; the dream agent used only the collected episodes). Prints a table and writes
benchmarks/results/dream_training.json.
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


def true_world_return(world: str, act, episodes: int, seed: int) -> tuple[float, float]:
    import wmkit

    env, returns = wmkit.make(world), []
    for i in range(episodes):
        obs, _ = env.reset(seed=10_000 + seed * 100 + i)
        ret, done = 0.0, False
        while not done:
            obs, r, term, trunc, _ = env.step(act(obs))
            ret, done = ret + r, term or trunc
        returns.append(ret)
    return float(np.mean(returns)), float(np.std(returns))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--world", default="Pendulum-v1")
    ap.add_argument("--episodes", type=int, default=30)
    ap.add_argument("--model-steps", type=int, default=3000)
    ap.add_argument("--agent-steps", type=int, default=10000)
    ap.add_argument("--eval-episodes", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(RESULTS / "dream_training.json"))
    args = ap.parse_args()
    import wmkit
    from stable_baselines3 import SAC

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        data = Path(tmp) / "data"
        wmkit.collect(args.world, args.episodes, data, policy="random", seed=args.seed, progress=False)
        wmkit.train(data, Path(tmp) / "model", "ensemble", wmkit.TrainConfig(steps=args.model_steps, seed=args.seed),
                    progress=False)
        model = wmkit.load_model(Path(tmp) / "model")
        dataset = wmkit.load_dataset(data)
        real_steps = sum(len(e.actions) for e in dataset.episodes)
        model_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        dream = SAC("MlpPolicy", wmkit.DreamEnv(model, dataset), seed=args.seed, verbose=0).learn(args.agent_steps)
        dream_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    real = SAC("MlpPolicy", wmkit.make(args.world), seed=args.seed, verbose=0).learn(args.agent_steps)
    real_s = time.perf_counter() - t0
    space = wmkit.make(args.world).action_space
    space.seed(args.seed)
    rows = [
        ("random policy", 0, true_world_return(args.world, lambda o: space.sample(), args.eval_episodes, args.seed), 0.0),
        ("SAC in DreamEnv", real_steps,
         true_world_return(args.world, lambda o: dream.predict(o, deterministic=True)[0], args.eval_episodes, args.seed),
         model_s + dream_s),
        ("SAC in the world", args.agent_steps,
         true_world_return(args.world, lambda o: real.predict(o, deterministic=True)[0], args.eval_episodes, args.seed),
         real_s),
    ]
    machine = {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()}
    result = {"benchmark": "dream_training", "world": args.world, "agent_steps": args.agent_steps,
              "episodes_collected": args.episodes, "model_steps": args.model_steps, "machine": machine,
              "rows": [{"policy": n, "real_steps": s, "return_mean": m, "return_std": sd, "seconds": round(t, 1)}
                       for n, s, (m, sd), t in rows]}
    print(f"training inside the model: {args.world}, SAC for {args.agent_steps} steps, "
          f"true-world return over {args.eval_episodes} episodes")
    print(f"{'policy':>18} {'real steps':>11} {'return':>18} {'seconds':>8}")
    for n, s, (m, sd), t in rows:
        print(f"{n:>18} {s:>11,} {m:>10.1f} +-{sd:6.1f} {t:>8.0f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
