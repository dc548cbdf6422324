"""Physics generalization: error on physics the model never saw, over error on the physics it did.

Both sides are fresh episodes from the true simulator, collected the same way as the model's
training data (same policy, same episode length), so that only the physics differs. In
distribution: `suite.physics_episodes` episodes, each with the physics of one training episode.
Held out: as many for every held-out split the world defines (every split whose name does not end
in `train`: `ood` holds ranges outside the training ones, as CaDM does; `combo_test` holds the two
corners of mass x friction that `combo_train` leaves out). Error: open-loop normalised RMSE at
k = 10, on the scale of the model's dataset. The ratio OOD / ID is 1 for a model whose physics
transfers; the larger, the worse it extrapolates. Held-out physics can also make the world itself
harder to predict (a light cup slides further and falls more often), so each split also reports
copy-last's own ratio and the model's skill there (skill vs copy-last on the same episodes); a model
that transfers keeps its in-distribution skill. (A split is only out of distribution for a model trained on the
matching `train` split: `wmkit collect --split train`, or `combo_train`.)
"""

from __future__ import annotations

import tempfile

from wmkit.eval.scorecard import Skip

K = 10
RATIO_FLOOR = 1e-6


def section(ctx) -> dict:
    from wmkit.data.collect import collect

    world = ctx.world
    held_out = [name for name in world.physics_space.splits if not name.endswith("train")]
    if not held_out:
        raise Skip(f"{ctx.model.spec.world} defines no held-out physics splits")
    train_eps = ctx.dataset.split("train") or ctx.dataset.episodes
    policies = sorted({e.policy for e in train_eps})
    policy = "noise" if "noise" in policies else policies[0]
    max_steps = max(len(e) for e in train_eps)  # fresh episodes as long as the training ones
    n = ctx.suite.physics_episodes

    def score(physics: str | list[dict]):
        """Error on n fresh episodes: of a split (a name), or one per given set of physics values."""
        with tempfile.TemporaryDirectory(prefix="wmkit-physics-") as tmp:
            kw = dict(policy=policy, seed=ctx.seed + 7, max_steps=max_steps, progress=False)
            if isinstance(physics, str):
                collect(ctx.model.spec.world, n, tmp, physics=physics, **kw)
            else:
                for values in physics:  # appending: episode i is still seeded from (seed, i)
                    collect(ctx.model.spec.world, 1, tmp, physics=values, **kw)
            return _accuracy_at_k(ctx, tmp)

    # in distribution: fresh episodes, each with the physics of a training episode, so that only
    # the physics differs between this baseline and the held-out splits
    id_acc = score([dict(train_eps[i * len(train_eps) // n].physics) for i in range(n)])
    if id_acc is None:
        raise Skip(f"fresh episodes of {max_steps} steps are too short for k={K}")
    splits = {}
    for name in held_out:
        acc = score(name)
        if acc is None:
            splits[name] = {"skipped": f"episodes of split {name!r} too short for k={K}"}
            continue
        # (the floor keeps an exact model's ratio at 1, not 0/0)
        splits[name] = {"nrmse": acc.nrmse[0], "ratio": (acc.nrmse[0] + RATIO_FLOOR) / (id_acc.nrmse[0] + RATIO_FLOOR),
                        "skill": acc.skill[0], "copy_last_ratio": acc.nrmse_copy_last[0] / id_acc.nrmse_copy_last[0],
                        "episodes": n,
                        "ranges": {p["name"]: p[name] for p in world.physics_space.describe() if name in p}}
    return {"k": K, "id_nrmse": id_acc.nrmse[0], "id_skill": id_acc.skill[0], "policy": policy,
            "max_steps": max_steps, "splits": splits}


def _accuracy_at_k(ctx, folder):
    from wmkit.data import load_dataset
    from wmkit.eval.accuracy import evaluate_accuracy

    try:
        acc = evaluate_accuracy(ctx.model, load_dataset(folder), horizons=[K], split="all", windows=ctx.suite.windows,
                                context=ctx.context, std=ctx.std)
    except Exception:  # noqa: BLE001 - too-short episodes: the caller records a skip
        return None
    return acc

