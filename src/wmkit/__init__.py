"""wmkit: learn a world model of your environment, measure it, play it, and act with it.

The public surface is small and imported lazily, so `import wmkit` and `wmkit --help` stay fast:

    >>> import wmkit
    >>> env = wmkit.make("Tabletop-v0")                    # a Gymnasium env with physics parameters
    >>> data = wmkit.load_dataset("runs/demo/data")        # episodes on disk, windows as tensors
    >>> model = wmkit.load_model("runs/demo/model")        # a trained world model
    >>> state = model.observe(obs, actions)                # perceive
    >>> pred = model.rollout(state, future_actions)        # predict / imagine
"""

from importlib import import_module

from wmkit.errors import WmkitError

__version__ = "0.1.0"

# name -> module that defines it; resolved on first use (PEP 562).
_LAZY = {
    "make": "wmkit.worlds",
    "list_worlds": "wmkit.worlds",
    "check_world": "wmkit.worlds.checker",
    "load_dataset": "wmkit.data",
    "collect": "wmkit.data.collect",
    "load_model": "wmkit.models",
    "make_model": "wmkit.models",
    "check_world_model": "wmkit.models.checker",
    "train": "wmkit.train",
    "TrainConfig": "wmkit.train",
    "evaluate_accuracy": "wmkit.eval.accuracy",
    "evaluate": "wmkit.eval.scorecard",
    "DreamEnv": "wmkit.control.dream",
    "make_planner": "wmkit.control",
}

__all__ = ["WmkitError", "__version__", *_LAZY, "client"]


_SUBMODULES = ("client",)  # wmkit.client.connect(url) without importing wmkit.client first


def __getattr__(name: str):
    if name in _SUBMODULES:
        return import_module(f"wmkit.{name}")
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'wmkit' has no attribute {name!r}")


def _register_with_gymnasium() -> None:
    # Cheap: string entry points only; nothing is imported until gymnasium.make is called.
    from wmkit.worlds.registry import register_gymnasium

    register_gymnasium()


_register_with_gymnasium()
