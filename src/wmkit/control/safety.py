"""A safety filter: reject action sequences whose imagined futures reach an unsafe event.

The world names the events that can be read off one observation (`World.state_events`, e.g.
Tabletop's `cup_leaves_table`). For each candidate sequence the filter counts the share of the
model's imagined futures in which the event happens at some step: over ensemble members
(`Prediction.members`) where the model has them, else the one predicted future (a share of 0 or 1).
That share is the sequence's risk; a planner with a filter never prefers a sequence whose risk
exceeds `max_risk` to one that does not, and among risky ones prefers the least risky. Used on its
own, `check(state, actions)` answers for given sequences (e.g. a policy's proposal).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from wmkit.errors import WmkitError

REJECTED = 1e6  # what a sequence over the risk limit loses in a planner's score (times 1 + risk)


@dataclass
class SafetyVerdict:
    risk: torch.Tensor  # [N]: share of imagined futures that reach the event
    safe: torch.Tensor  # [N] bool: risk <= max_risk


class SafetyFilter:
    def __init__(self, model, event: str, max_risk: float = 0.1):
        from wmkit.worlds.registry import resolve

        world_cls, _ = resolve(model.spec.world)
        events = getattr(world_cls, "state_events", {})
        if event not in events:
            raise WmkitError(f"{model.spec.world} names no unsafe event {event!r} that can be read from a state; "
                             f"known: {', '.join(events) or 'none'}")
        if "state" not in model.spec.decodes:
            raise WmkitError(f"the {model.family!r} model does not decode state vectors, so the filter cannot read "
                             f"{event!r} in its imagined futures")
        if not (0 <= max_risk < 1):
            raise WmkitError(f"max_risk={max_risk!r} must be in [0, 1)")
        self.model, self.event, self.max_risk = model, event, max_risk
        self._happens = events[event]

    def risk(self, pred) -> torch.Tensor:
        """[N]: the share of futures in `pred` ([N, H, ...]) in which the event happens at some step."""
        futures = pred.members if pred.members is not None else pred.obs[:, :, None]  # [N, H, M, D]
        return self._happens(futures).any(dim=1).float().mean(dim=-1)

    def penalty(self, pred) -> torch.Tensor:
        """[N]: what to subtract from a planner's scores: 0 for safe sequences, a rejection for the others."""
        risk = self.risk(pred)
        return torch.where(risk > self.max_risk, REJECTED * (1 + risk), torch.zeros_like(risk))

    @torch.no_grad()
    def check(self, state, actions) -> SafetyVerdict:
        """Risk of action sequences [N, H, A] from `state` (batch 1, or N rows)."""
        actions = self.model.check_actions(actions, ndim=3)
        N = actions.shape[0]
        if state.batch_size not in (1, N):
            raise WmkitError(f"a state batch of {state.batch_size} for {N} action sequences: give one state or {N}")
        starts = state if state.batch_size == N else state.repeat(N)
        risk = self.risk(self.model.rollout(starts, actions))
        return SafetyVerdict(risk=risk, safe=risk <= self.max_risk)
