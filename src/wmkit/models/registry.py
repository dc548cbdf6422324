"""Model families by name, with lazy entry points."""

from __future__ import annotations

from importlib import import_module

from wmkit.errors import WmkitError

FAMILIES = {
    "ensemble": "wmkit.models.ensemble:EnsembleModel",
    "rssm": "wmkit.models.rssm:RSSMModel",
    "oracle": "wmkit.models.baselines:OracleModel",
    "copy-last": "wmkit.models.baselines:CopyLastModel",
}
TRAINABLE = ("ensemble", "rssm")
REFERENCES = ("oracle", "copy-last")  # built from a world, no weights


def model_class(family: str):
    if family not in FAMILIES:
        raise WmkitError(f"unknown model family {family!r}; known: {', '.join(FAMILIES)}")
    module, name = FAMILIES[family].split(":")
    return getattr(import_module(module), name)
