"""The Dyna loop: act in the true world with a planner over a learned model, grow the dataset,
retrain the model, repeat (Sutton's Dyna; PETS's and MBPO's outer loop).

    run_agent(AgentConfig(world="Pendulum-v1", steps=3000, planner="cem"), out="runs/agent")

First `seed_episodes` episodes of the `seed_policy` (random actions, or coloured noise); then the
model (an ensemble, `model_preset`) is trained afresh on everything collected so far and a planner
acts with it for one episode in the true world, that episode joining the dataset; the model is
retrained whenever `retrain_every` new steps have come in (every episode where episodes are that long). Every episode is logged to
`OUT/log.jsonl` (environment steps so far, return, termination, the world's events, who acted,
seconds), so return against environment steps is the learning curve. With `eval_episodes` the agent
as it stands at the end of its budget then acts in that many more episodes (rows with `eval: true`,
their data in `OUT/eval`, never trained on): the return at `steps` steps by the field's usual
protocol, free of where the last training episodes happened to end. The dataset (`OUT/data`) and the
last model (`OUT/model`) stay on disk; a `SafetyFilter` on a named event (`safety=`) keeps the
planner from plans whose imagined futures reach it.

With `planner="policy"` no planner runs: after each retrain an actor-critic (control/imagination.py)
goes on learning inside the new model for `imagination_updates` updates, from moments of the data so
far, and the actor (sampling, so it explores) acts for the next episode; the actor and critic carry
over from model to model, as in Dreamer. With `terminal_value=True` a planner acts and the same
actor-critic learns alongside it: its critic scores where each plan ends (MPC with a learned value,
as in TD-MPC and LOOP), so the planner sees past its horizon; with `value_from="data"` that value is
fitted to the real transitions instead (control/value.py), and no actor is trained. With
`policy_prior=K` the same actor proposes K plans at every control step, rolled through the model, to
compete with the planner's samples (TD-MPC2's planning: a policy prior, a learned terminal value).
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from wmkit.control.base import PlannerPolicy
from wmkit.errors import WmkitError, check_fields

__all__ = ["AgentConfig", "PlannerPolicy", "run_agent"]

EVAL_SEED_OFFSET = 10_000  # evaluation episodes start from other states than the training episodes


@dataclass
class AgentConfig:
    world: str = "Pendulum-v1"
    steps: int = 3000
    """environment steps in all (the random episodes included); the episode in flight finishes"""
    planner: str = "cem"
    """cem, icem, mppi (cem-discrete on discrete actions), or policy: an actor-critic trained in imagination"""
    seed_episodes: int = 1
    """episodes of the seed policy before the first model"""
    seed_policy: str = "random"
    """what acts in the seed episodes: random (independent uniform actions) or noise (coloured noise, which
    meets Tabletop's cup: logged exploration for the model to start from)"""
    train_steps: int = 1000
    """training steps of each retrain (a fresh model on all the data so far)"""
    retrain_every: int = 200
    """retrain once at least this many environment steps have come in since the last model (short
    episodes share a model)"""
    model_preset: str = "tiny"
    horizon: int = 15
    samples: int = 200
    iterations: int = 4
    max_episode_steps: int | None = None
    """cap on an episode's length (default: the world's own)"""
    safety: str | None = None
    """an unsafe event of the world (e.g. cup_leaves_table) that plans must avoid"""
    max_risk: float = 0.1
    imagination_updates: int = 500
    """planner="policy" or terminal_value: actor-critic updates inside each new model (or, with
    value_from='data', TD updates of the data value after each retrain)"""
    terminal_value: bool = False
    """a planner adds the value, learned in imagination, of where each plan ends"""
    value_from: str = "imagination"
    """terminal_value: where the value is learned: 'imagination' (the critic of an actor-critic trained inside
    each new model) or 'data' (critics fitted by TD to the real transitions so far: the value of what the
    agent did from each state, events the model never learned included; control/value.py)"""
    critics: int = 1
    """planner="policy" or terminal_value: critics the actor-critic (or the data value) trains side by side"""
    policy_prior: int = 0
    """a planner also imagines this many action sequences proposed by the actor of an actor-critic trained in
    imagination (inside each new model, as for terminal_value), the actor acting through the model from the
    current state; they compete with the planner's own samples at every iteration (TD-MPC2's policy samples)"""
    value_pessimism: float = 0.0
    """terminal_value: the value is the critics' mean less this times their spread, so plans are not drawn to
    where only some critics see value (needs critics >= 2)"""
    known_task: bool = False
    """a planner scores imagined futures by the world's own reward and termination functions of the
    observation (World.known_task: Reacher, InvertedPendulum, HalfCheetah) instead of the model's heads (PETS)"""
    uncertainty_penalty: float = 0.0
    """a planner scores each imagined step minus this times the ensemble members' disagreement there, so
    plans keep to where the data went (MOPO's and MOReL's remedy for plans that exploit a model's errors)"""
    eval_episodes: int = 0
    """after the budget, episodes in which the last planner (or the actor, without exploring) acts as it
    stands: a measure of the agent at `steps` steps, kept out of the training data (OUT/eval)"""
    seed: int = 0

    def __post_init__(self):
        check_fields(self, "agent config", positive_ints=("steps", "seed_episodes", "train_steps", "retrain_every",
                                                          "horizon", "samples", "iterations",
                                                          "imagination_updates", "critics"),
                     nonnegative_ints=("eval_episodes", "policy_prior"),
                     nonnegative=("uncertainty_penalty", "value_pessimism"))
        from wmkit.control import PLANNERS
        from wmkit.data.policies import POLICIES

        if self.seed_policy not in POLICIES:
            raise WmkitError(f"agent config: seed_policy={self.seed_policy!r}; choose one of {', '.join(POLICIES)}")
        if self.planner not in (*PLANNERS, "policy"):
            raise WmkitError(f"agent config: planner={self.planner!r}; choose one of {', '.join(PLANNERS)} or "
                             f"policy (an actor-critic trained in imagination)")
        if self.planner == "policy" and self.safety is not None:
            raise WmkitError("agent config: the safety filter screens planned action sequences; use a planner "
                             "(cem, icem, mppi) with safety=, not planner='policy'")
        for name in ("known_task", "uncertainty_penalty"):  # what only a planner's scoring reads
            if self.planner == "policy" and getattr(self, name):
                raise WmkitError(f"agent config: {name} scores a planner's imagined futures; planner='policy' "
                                 f"learns from the model's predicted rewards")
        if self.planner == "policy" and self.terminal_value:
            raise WmkitError("agent config: terminal_value adds a learned value to a planner's plans; "
                             "planner='policy' already acts with the actor-critic")
        if self.policy_prior and self.planner == "policy":
            raise WmkitError(f"agent config: policy_prior={self.policy_prior} has the actor propose plans to a "
                             f"planner; planner='policy' already acts with the actor: choose cem, icem or mppi")
        if self.policy_prior and self.value_from == "data":
            raise WmkitError(f"agent config: policy_prior={self.policy_prior} needs an actor trained in imagination; "
                             f"value_from='data' trains no actor (use value_from='imagination')")
        if self.critics != 1 and not (self.planner == "policy" or self.terminal_value or self.policy_prior):
            raise WmkitError(f"agent config: critics={self.critics} trains an actor-critic's critics; use it with "
                             f"terminal_value=True, policy_prior or planner='policy'")
        if self.value_from not in ("imagination", "data"):
            raise WmkitError(f"agent config: value_from={self.value_from!r}; choose imagination or data")
        if self.value_from != "imagination" and not self.terminal_value:
            raise WmkitError(f"agent config: value_from={self.value_from!r} says where a planner's terminal value is "
                             f"learned; use it with terminal_value=True")
        if self.value_pessimism and not (self.terminal_value and self.critics >= 2):
            raise WmkitError(f"agent config: value_pessimism={self.value_pessimism!r} discounts the spread between "
                             f"the critics of a planner's terminal value; use it with terminal_value=True and "
                             f"critics >= 2")


def run_agent(cfg: AgentConfig, out: str | Path, say=print) -> list[dict]:
    """Run the loop; returns the log rows (also in OUT/log.jsonl)."""
    from wmkit.control import Objective, SafetyFilter, make_planner
    from wmkit.control.imagination import ImaginationConfig, ImaginedActorCritic
    from wmkit.control.value import DataValue, DataValueConfig
    from wmkit.data import load_dataset
    from wmkit.data.collect import collect
    from wmkit.models import load_model, preset_config
    from wmkit.train import TrainConfig, train
    from wmkit.worlds.registry import resolve

    out = Path(out)
    data, run, log_path = out / "data", out / "model", out / "log.jsonl"
    if out.exists() and any(out.iterdir()):
        raise WmkitError(f"{out} is not empty; give the agent a new --out folder")
    world_cls, _ = resolve(cfg.world)  # everything checked before anything is written
    events = getattr(world_cls, "state_events", {})
    if cfg.known_task and world_cls.known_task is None:
        from wmkit.worlds.registry import REGISTRY

        have = [w for w, e in REGISTRY.items() if getattr(e.load(), "known_task", None) is not None]
        raise WmkitError(f"{cfg.world} does not state its reward as a function of the observation (known_task); "
                         f"worlds that do: {', '.join(have)}. Leave known_task off to plan with the model's reward")
    if cfg.safety is not None and cfg.safety not in events:
        raise WmkitError(f"{cfg.world} names no unsafe event {cfg.safety!r}; known: {', '.join(events) or 'none'}")
    model_config = preset_config("ensemble", cfg.model_preset)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    rows, env_steps, episode = [], 0, 0

    def act(policy, who: str, evaluating: bool = False) -> None:
        nonlocal env_steps, episode
        t0, stats = time.perf_counter(), []
        # evaluation episodes go to their own folder, from other starts, and never train a model
        collect(cfg.world, 1, out / "eval" if evaluating else data, policy=policy,
                seed=cfg.seed + EVAL_SEED_OFFSET if evaluating else cfg.seed, max_steps=cfg.max_episode_steps,
                progress=False, stats=stats)
        if not evaluating:
            env_steps += stats[0]["steps"]  # one episode
        done = stats[0]
        row = {"episode": episode, "env_steps": env_steps, "return": round(done["return"], 4),
               "terminated": done["terminated"], "success": done["success"], "events": done["events"], "acted": who,
               "eval": evaluating, "seconds": round(time.perf_counter() - t0, 2)}
        rows.append(row)
        with log_path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        say(f"episode {episode:3d}  {who:>6}  env steps {env_steps:6d}  return {row['return']:10.2f}"
            f"  ({row['seconds']:.1f} s)")
        episode += 1

    for _ in range(cfg.seed_episodes):
        act(cfg.seed_policy, cfg.seed_policy)
    trained_at, policy, learner = None, None, None
    while env_steps < cfg.steps:
        if trained_at is None or env_steps - trained_at >= cfg.retrain_every:
            if run.exists():
                shutil.rmtree(run)  # a fresh model on all the data so far
            train(data, run, "ensemble", TrainConfig(steps=cfg.train_steps, seed=cfg.seed + episode, val_fraction=0.0),
                  model_config=model_config, progress=False)
            model = load_model(run)
            if cfg.value_from == "data":  # the terminal value from the real transitions, not the model
                if learner is None:
                    learner = DataValue(model.spec.obs_dim, DataValueConfig(
                        seed=cfg.seed, critics=cfg.critics, pessimism=cfg.value_pessimism), device=model.device)
                learner.train(load_dataset(data, val_fraction=0.0), cfg.imagination_updates)
            elif cfg.planner == "policy" or cfg.terminal_value or cfg.policy_prior:
                if learner is None:
                    learner = ImaginedActorCritic(model, ImaginationConfig(
                        horizon=cfg.horizon, seed=cfg.seed, critics=cfg.critics, pessimism=cfg.value_pessimism))
                learner.set_model(model)
                learner.train(load_dataset(data, val_fraction=0.0), cfg.imagination_updates)
            if cfg.planner == "policy":
                policy = learner.policy(explore=True)
            else:
                safety = SafetyFilter(model, cfg.safety, cfg.max_risk) if cfg.safety else None
                objective = Objective(task=world_cls.known_task if cfg.known_task else None,
                                      uncertainty_penalty=cfg.uncertainty_penalty,
                                      terminal_value=learner.terminal_value() if cfg.terminal_value else None)
                prior = learner.prior(cfg.policy_prior) if cfg.policy_prior else None
                policy = PlannerPolicy(make_planner(cfg.planner, model, objective, safety=safety, prior=prior,
                                                    horizon=cfg.horizon,
                                                    samples=cfg.samples, iterations=cfg.iterations,
                                                    seed=cfg.seed + episode))
            trained_at = env_steps
        act(policy, cfg.planner)
    if cfg.eval_episodes and policy is None:
        raise WmkitError(f"the seed episodes used all {cfg.steps} steps, so no model was trained to evaluate; "
                         f"give more steps (the log so far is in {log_path})")
    if cfg.eval_episodes and cfg.planner == "policy":
        policy = learner.policy(explore=False)
    for _ in range(cfg.eval_episodes):  # the agent as it stands after `steps` steps: no retrain, no learning
        act(policy, cfg.planner, evaluating=True)
    return rows
