"""Physics generalization: error on physics the model never saw, over error on the physics it did.

In-distribution error is the model's open-loop normalised RMSE at k = 10 on its own held-out
episodes. For every held-out physics split the world defines (every split whose name does not end in
`train`: `ood` holds ranges outside the training ones, as CaDM does; `combo_test` holds the two
corners of mass x friction that `combo_train` leaves out), the scorecard collects
`suite.physics_episodes` fresh episodes in the true simulator, with the same policy, and scores the
model on them on the same scale. The ratio OOD / ID is 1 for a model whose physics transfers; the
larger, the worse it extrapolates. (A split is only out of distribution for a model trained on the
matching `train` split: `wmkit collect --split train`, or `combo_train`.)
"""

from __future__ import annotations

import tempfile

from wmkit.eval.scorecard import Skip

K = 10
RATIO_FLOOR = 1e-6


def section(ctx) -> dict:
    from wmkit.data import load_dataset
    from wmkit.data.collect import collect
    from wmkit.eval.accuracy import evaluate_accuracy

    world = ctx.world
    held_out = [name for name in world.physics_space.splits if not name.endswith("train")]
    if not held_out:
        raise Skip(f"{ctx.model.spec.world} defines no held-out physics splits")
    kw = dict(horizons=[K], windows=ctx.suite.windows, context=ctx.context, std=ctx.std)
    try:
        id_err = evaluate_accuracy(ctx.model, ctx.dataset, split="val", **kw).nrmse[0]
    except Exception as e:  # noqa: BLE001 - any shortage of held-out data is a skip, with its reason
        raise Skip(f"no in-distribution baseline at k={K}: {e}") from None
    policies = sorted({e.policy for e in ctx.dataset.episodes})
    policy = "noise" if "noise" in policies else policies[0]
    splits = {}
    for name in held_out:
        with tempfile.TemporaryDirectory(prefix=f"wmkit-physics-{name}-") as tmp:
            collect(ctx.model.spec.world, ctx.suite.physics_episodes, tmp, policy=policy, seed=ctx.seed + 7,
                    physics=name, progress=False)
            data = load_dataset(tmp)
            try:
                acc = evaluate_accuracy(ctx.model, data, split="all", **kw)
            except Exception as e:  # noqa: BLE001
                splits[name] = {"skipped": f"episodes of split {name!r} too short for k={K}: {e}"}
                continue
        err = acc.nrmse[0]
        # (the floor keeps an exact model's ratio at 1, not 0/0)
        splits[name] = {"nrmse": err, "ratio": (err + RATIO_FLOOR) / (id_err + RATIO_FLOOR),
                        "episodes": ctx.suite.physics_episodes,
                        "ranges": {p["name"]: p[name] for p in world.physics_space.describe() if name in p}}
    return {"k": K, "id_nrmse": id_err, "policy": policy, "splits": splits}
