"""World models: the interface (`base`), the families, the registry and checkpoints."""

from __future__ import annotations

from wmkit.errors import WmkitError
from wmkit.models.base import ModelSpec, Prediction, State, WorldModel
from wmkit.models.checkpoint import load_model as _load_dir
from wmkit.models.checkpoint import save_model
from wmkit.models.registry import FAMILIES, PRESETS, REFERENCES, model_class, preset_config


def make_model(family: str, spec: ModelSpec, config=None, **overrides) -> WorldModel:
    """A fresh model of `family`; `overrides` set fields of its config dataclass."""
    cls = model_class(family)
    config_cls = getattr(cls, "config_class", None)
    if config is not None and overrides:
        raise WmkitError(f"pass either a config or field overrides {sorted(overrides)}, not both")
    if config_cls is None:
        if overrides:
            raise WmkitError(f"the {family} model has no config; drop {sorted(overrides)}")
    elif config is None:
        try:
            config = config_cls(**overrides)
        except TypeError:
            known = ", ".join(config_cls.__dataclass_fields__)
            raise WmkitError(f"unknown {family} config field in {sorted(overrides)}; known: {known}") from None
    return cls(spec, config)


def reference_model(family: str, world: str) -> WorldModel:
    """`oracle` or `copy-last` for a world (no training, no weights)."""
    from wmkit.worlds import make

    if family not in REFERENCES:
        raise WmkitError(f"{family!r} is not a reference model; references: {', '.join(REFERENCES)}")
    from wmkit.actions import layout

    env = make(world)
    actions = layout(env.action_space, env.world_id)
    spec = ModelSpec(world=env.world_id, obs_dim=int(env.observation_space.shape[0]), action_dim=actions.dim,
                     dt=env.dt, latent_dim=0, action_low=actions.low, action_high=actions.high,
                     action_kind=actions.kind)
    env.close()
    return model_class(family)(spec)


def load_model(path, device="cpu", world: str | None = None) -> WorldModel:
    """Load a trained model directory, or name a reference (`oracle`, `copy-last`) with `world`."""
    if str(path) in REFERENCES:
        if world is None:
            raise WmkitError(f"the {path} model needs a world: pass world= (or --data on the command line)")
        return reference_model(str(path), world)
    return _load_dir(path, device=device)


__all__ = ["ModelSpec", "Prediction", "State", "WorldModel", "FAMILIES", "PRESETS", "make_model", "load_model",
           "preset_config", "reference_model", "save_model"]
