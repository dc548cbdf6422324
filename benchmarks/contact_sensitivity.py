"""One-step sensitivity of Tabletop's pushes: how much of the next state a 20 Hz observation decides.

    python benchmarks/contact_sensitivity.py [--episodes 30] [--states 150] [--eps 0.001]

Runs coloured-noise episodes in the true world, picks states where the pusher is at the cup (centres
closer than 0.11 m) and the cup is on the table, perturbs each by `eps` of every dimension's spread
(Gaussian, spreads from the same episodes), steps the simulator once from the state and from the
perturbed state under the same action, and reports the RMS change of the next state per dimension, in
spreads. A large number means the next state hangs on digits no learned model can resolve (stick-slip,
impacts); it bounds the one-step skill a smooth model can reach. The same run reports the share of
episodes that end with the cup on the floor. Prints a table and writes
benchmarks/results/contact_sensitivity.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

import numpy as np

os.environ.setdefault("MUJOCO_GL", "egl")

import wmkit  # noqa: E402
from wmkit.data.policies import make_policy  # noqa: E402

RESULTS = Path(__file__).parent / "results"
NAMES = ("pusher x", "pusher y", "cup x", "cup y", "cup z", "pusher vx", "pusher vy", "cup vx", "cup vy", "cup vz")
NEAR = 0.11  # m between pusher and cup centres: touching (0.095) or about to


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=30)
    ap.add_argument("--states", type=int, default=150)
    ap.add_argument("--eps", type=float, default=1e-3, help="perturbation, in spreads of each dimension")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=RESULTS / "contact_sensitivity.json")
    args = ap.parse_args()

    env = wmkit.make("Tabletop-v0")
    world = env.unwrapped
    states, actions, falls = [], [], 0
    for ep in range(args.episodes):
        obs, _ = env.reset(seed=args.seed + ep)
        policy = make_policy("noise", env.action_space, np.random.default_rng(args.seed + ep))
        policy.reset()
        for _ in range(world.max_episode_steps):
            action = policy(obs)
            states.append(obs)
            actions.append(action)
            obs, _, terminated, truncated, _ = env.step(action)
            falls += terminated
            if terminated or truncated:
                break
    states, actions = np.array(states), np.array(actions)
    spread = states.std(0).clip(1e-9)
    pushing = np.linalg.norm(states[:, :2] - states[:, 2:4], axis=-1) < NEAR
    on_table = (np.abs(states[:, 2:4]) < 0.2).all(-1)
    candidates = np.flatnonzero(pushing & on_table)
    rng = np.random.default_rng(args.seed)
    picked = rng.choice(candidates, min(args.states, len(candidates)), replace=False)

    def next_state(obs, action):
        world.reset(seed=0)
        world.state_from_obs(obs)
        return world.step(action)[0]

    moved = np.array([(next_state(states[i] + args.eps * spread * rng.standard_normal(len(spread)), actions[i])
                       - next_state(states[i], actions[i])) / spread for i in picked])
    rms = np.sqrt((moved ** 2).mean(0))

    print(f"Tabletop-v0: {len(picked)} pushing states from {args.episodes} episodes, perturbed by {args.eps:g} "
          f"spreads; {falls} of {args.episodes} episodes end with the cup on the floor")
    print(f"{'dimension':<12}{'spread':>10}{'next-state change (spreads)':>30}")
    for name, s, r in zip(NAMES, spread, rms):
        print(f"{name:<12}{s:>10.4f}{r:>30.4f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "world": "Tabletop-v0", "episodes": args.episodes, "states": len(picked), "eps": args.eps,
        "fall_share": falls / args.episodes, "machine": platform.machine(),
        "by_dimension": [{"name": n, "spread": float(s), "change": float(r)} for n, s, r in zip(NAMES, spread, rms)],
    }, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
