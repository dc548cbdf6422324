"""Physics parameters of a world: their valid ranges, defaults and named sampling splits.

A world declares a `PhysicsSpace`. A user sets values explicitly (a dict) or names a split
("train", "ood", ...) to sample from at every reset; the values used are reported in `info` and
stored with each episode.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from wmkit.errors import WmkitError

Box = dict[str, tuple[float, float]]  # parameter name -> (low, high); names left out stay default


@dataclass(frozen=True)
class PhysicsParam:
    name: str
    default: float
    low: float  # smallest value the world accepts
    high: float  # largest value the world accepts
    doc: str

    def __post_init__(self):
        if not (self.low <= self.default <= self.high):
            raise ValueError(f"{self.name}: default {self.default} outside [{self.low}, {self.high}]")


@dataclass(frozen=True)
class PhysicsSpace:
    params: tuple[PhysicsParam, ...] = ()
    # split name -> boxes; sampling picks one box uniformly, then each range uniformly.
    splits: dict[str, tuple[Box, ...]] = field(default_factory=dict)

    def __post_init__(self):
        for split, boxes in self.splits.items():
            for box in boxes:
                for name, (lo, hi) in box.items():
                    p = self.param(name)
                    if not (p.low <= lo <= hi <= p.high):
                        raise ValueError(f"split {split!r}: {name} range ({lo}, {hi}) outside [{p.low}, {p.high}]")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    def param(self, name: str) -> PhysicsParam:
        for p in self.params:
            if p.name == name:
                return p
        known = ", ".join(self.names) or "none (this world has no physics parameters)"
        raise WmkitError(f"unknown physics parameter {name!r}; known: {known}")

    def defaults(self) -> dict[str, float]:
        return {p.name: p.default for p in self.params}

    def validate(self, values: dict) -> dict[str, float]:
        """Defaults overlaid with `values`, each checked against its range."""
        out = self.defaults()
        for name, value in values.items():
            p = self.param(name)
            try:
                v = float(value)
            except (TypeError, ValueError):
                raise WmkitError(f"physics parameter {name}={value!r} is not a number") from None
            if not math.isfinite(v) or not (p.low <= v <= p.high):
                raise WmkitError(
                    f"physics parameter {name}={value!r} is outside its range [{p.low}, {p.high}]; "
                    f"pick a value inside it (see `wmkit worlds`)"
                )
            out[name] = v
        return out

    def sample(self, split: str, rng: np.random.Generator) -> dict[str, float]:
        if split == "default":
            return self.defaults()
        if split not in self.splits:
            known = ", ".join(["default", *self.splits])
            raise WmkitError(f"unknown physics split {split!r} for this world; known: {known}")
        boxes = self.splits[split]
        box = boxes[int(rng.integers(len(boxes)))]
        values = {name: float(rng.uniform(lo, hi)) for name, (lo, hi) in box.items()}
        return self.validate(values)

    def resolve(self, physics: None | str | dict, rng: np.random.Generator) -> dict[str, float]:
        """None -> defaults; a split name -> a sample; a dict -> validated explicit values."""
        if physics is None:
            return self.defaults()
        if isinstance(physics, str):
            return self.sample(physics, rng)
        if isinstance(physics, dict):
            return self.validate(physics)
        raise WmkitError(f"physics must be a dict of values or a split name, got {physics!r}")

    def describe(self) -> list[dict]:
        rows = []
        for p in self.params:
            row = {"name": p.name, "default": p.default, "range": [p.low, p.high], "doc": p.doc}
            for split, boxes in self.splits.items():
                spans = [list(b[p.name]) for b in boxes if p.name in b]
                if spans:
                    row[split] = spans if len(spans) > 1 else spans[0]
            rows.append(row)
        return rows


def scale_splits(names: tuple[str, ...], combo: tuple[str, str] | None = None) -> dict[str, tuple[Box, ...]]:
    """The CaDM splits for multiplicative scales: train 0.75-1.25, held out 0.2-0.5 and 1.5-1.8.

    With `combo=(a, b)`, also a combinatorial pair: `combo_train` holds two corners of a x b (both
    low, both high) and `combo_test` the other two, each value inside the ranges seen in training.
    """
    splits = {
        "train": ({n: (0.75, 1.25) for n in names},),
        "ood": ({n: (0.2, 0.5) for n in names}, {n: (1.5, 1.8) for n in names}),
    }
    if combo:
        splits.update(corner_splits(combo[0], (0.5, 0.75), (1.25, 1.5), combo[1], (0.5, 0.75), (1.25, 1.5)))
    return splits


def corner_splits(a: str, a_low, a_high, b: str, b_low, b_high) -> dict[str, tuple[Box, ...]]:
    """`combo_train`: (a low, b low) and (a high, b high); `combo_test`: the two mixed corners."""
    return {
        "combo_train": ({a: a_low, b: b_low}, {a: a_high, b: b_high}),
        "combo_test": ({a: a_low, b: b_high}, {a: a_high, b: b_low}),
    }
