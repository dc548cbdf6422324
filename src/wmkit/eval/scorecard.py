"""The five-property scorecard: one call scores any WorldModel against the true simulator.

`evaluate(model, data, suite="quick")` runs, in order, the sections

    accuracy, causality, controllability, persistence, realtime, physics, planning

each a function of an `EvalContext` (the model, the dataset, the suite's budgets and a lazily built
true world) that returns a JSON-ready dict. A section that cannot run for this model, world or
dataset raises `Skip` (or a `WmkitError`): the scorecard records `{"skipped": why}` for it and goes
on, so one missing piece never costs the rest. Every section uses only the WorldModel verbs, so a
family added later is scored unchanged. What each number means: docs/scorecard.md.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import asdict, dataclass
from functools import cached_property

import torch

from wmkit.errors import WmkitError

SECTIONS = ("accuracy", "causality", "controllability", "persistence", "realtime", "physics", "planning")


class Skip(Exception):
    """This metric cannot run here; the message says why (and what would let it run)."""


@dataclass(frozen=True)
class Suite:
    name: str
    windows: int  # held-out windows per batch (accuracy, leak, exposure, controllability)
    starts: int  # simulator states the interventional metrics start from
    sequences: int  # action sequences tried from each of them
    intervention_horizon: int  # steps each sequence runs
    drift_horizon: int  # persistence: imagined steps
    drift_rollouts: int
    latency_steps: int  # batch-1 steps timed
    probe_steps: int  # gradient steps of the inverse-dynamics probe
    physics_episodes: int  # episodes collected per held-out physics split
    plan_episodes: int
    plan_steps: int  # control steps per planning episode
    plan_samples: int  # CEM samples per iteration
    plan_iterations: int
    plan_horizon: int


SUITES = {
    "quick": Suite("quick", windows=128, starts=12, sequences=6, intervention_horizon=10, drift_horizon=200,
                   drift_rollouts=16, latency_steps=100, probe_steps=300, physics_episodes=10, plan_episodes=2,
                   plan_steps=50, plan_samples=32, plan_iterations=3, plan_horizon=12),
    "full": Suite("full", windows=512, starts=32, sequences=8, intervention_horizon=10, drift_horizon=1000,
                  drift_rollouts=32, latency_steps=300, probe_steps=800, physics_episodes=30, plan_episodes=3,
                  plan_steps=60, plan_samples=64, plan_iterations=3, plan_horizon=12),
}


def get_suite(name: str | Suite) -> Suite:
    if isinstance(name, Suite):
        return name
    if name not in SUITES:
        raise WmkitError(f"unknown suite {name!r}; choose one of: {', '.join(SUITES)}")
    return SUITES[name]


class EvalContext:
    """What every section needs: the model, held-out data, budgets, scales and the true world."""

    def __init__(self, model, dataset, suite: Suite, seed: int = 0):
        self.model, self.dataset, self.suite, self.seed = model, dataset, suite, seed
        # one scale for every error: each dimension's spread over the whole dataset
        self.std = dataset.stats("all")["obs_std"].clamp_min(1e-6).to(model.device)
        self.context = max(model.spec.context - 1, 0)

    def generator(self, salt: int) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed * 1_000_003 + salt)

    @cached_property
    def world(self):
        """A private instance of the true simulator (a `Skip` when there is none to compare with)."""
        from wmkit.worlds import make

        try:
            env = make(self.model.spec.world)
        except WmkitError as e:
            raise Skip(f"no true simulator for {self.model.spec.world}: {e}") from None
        env.reset(seed=self.seed)
        try:
            env.get_state()
        except (NotImplementedError, WmkitError, AttributeError):
            raise Skip(f"{self.model.spec.world} cannot save and restore its state, which this metric needs") from None
        return env

    def windows(self, horizon: int, split: str = "val"):
        try:
            return self.dataset.windows(self.context, horizon, split)
        except WmkitError as e:
            raise Skip(f"too little held-out data for {self.context} + {horizon} step windows: {e}") from None

    @cached_property
    def interventions(self):
        from wmkit.eval.interventions import run_interventions

        return run_interventions(self)


def machine() -> dict:
    """The machine the numbers were measured on."""
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def evaluate(model, data, suite: str | Suite = "quick", sections=None, seed: int = 0, say=None) -> dict:
    """Score `model` on `data` (a Dataset or a dataset folder): one JSON-ready dict, a section per property."""
    from wmkit.data import load_dataset
    from wmkit.data.dataset import Dataset

    suite = get_suite(suite)
    dataset = data if isinstance(data, Dataset) else load_dataset(data)
    if model.spec.obs_dim != dataset.meta.obs_dim or model.spec.action_dim != dataset.meta.action_dim:
        raise WmkitError(
            f"model for {model.spec.world} (obs {model.spec.obs_dim}, action {model.spec.action_dim}) does not match "
            f"dataset {dataset.root} of {dataset.world} (obs {dataset.meta.obs_dim}, action "
            f"{dataset.meta.action_dim}); score a model on data of its own world"
        )
    if model.spec.world != dataset.world:
        raise WmkitError(f"the model was trained on {model.spec.world} but {dataset.root} holds {dataset.world}")
    sections = list(SECTIONS if sections is None else sections)
    for name in sections:
        if name not in SECTIONS:
            raise WmkitError(f"unknown scorecard section {name!r}; known: {', '.join(SECTIONS)}")
    ctx = EvalContext(model, dataset, suite, seed)
    model.eval()
    out = {"world": model.spec.world, "family": model.family, "suite": suite.name, "data": str(dataset.root),
           "machine": machine(), "budgets": asdict(suite)}
    t_all = time.perf_counter()
    funcs = _section_functions()
    for name in sections:
        t0 = time.perf_counter()
        if say:
            say(f"  {name} ...")
        try:
            result = funcs[name](ctx)
        except (Skip, WmkitError) as e:
            result = {"skipped": str(e)}
        result["seconds"] = round(time.perf_counter() - t0, 2)
        out[name] = result
    out["seconds"] = round(time.perf_counter() - t_all, 2)
    return jsonable(out)


def _section_functions() -> dict:
    from wmkit.eval import causality, controllability, persistence, physics_gen, planning, realtime
    from wmkit.eval.accuracy import accuracy_section

    return {"accuracy": accuracy_section, "causality": causality.section,
            "controllability": controllability.section, "persistence": persistence.section,
            "realtime": realtime.section, "physics": physics_gen.section, "planning": planning.section}


def guarded(fn, ctx) -> dict:
    """Run one metric inside a section; a `Skip` becomes `{"skipped": why}` and the section goes on."""
    try:
        return fn(ctx)
    except (Skip, WmkitError) as e:
        return {"skipped": str(e)}


def jsonable(x):
    """The scorecard with every non-finite float as None (strict JSON has no NaN or Infinity)."""
    import math

    if isinstance(x, dict):
        return {k: jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x
