"""Model families by name, with lazy entry points."""

from __future__ import annotations

from importlib import import_module

from wmkit.errors import WmkitError

FAMILIES = {
    "ensemble": "wmkit.models.ensemble:EnsembleModel",
    "rssm": "wmkit.models.rssm:RSSMModel",
    "transformer": "wmkit.models.transformer:TransformerModel",
    "oracle": "wmkit.models.baselines:OracleModel",
    "copy-last": "wmkit.models.baselines:CopyLastModel",
    "motion-prior": "wmkit.models.baselines:MotionPriorModel",
}
TRAINABLE = ("ensemble", "rssm", "transformer")
PRESETS = ("tiny", "small", "base")  # sizes for a 2-core CPU: seconds, minutes, tens of minutes to train
REFERENCES = ("oracle", "copy-last", "motion-prior")  # built from a world, no weights


def model_class(family: str):
    if family not in FAMILIES:
        raise WmkitError(f"unknown model family {family!r}; known: {', '.join(FAMILIES)}")
    module, name = FAMILIES[family].split(":")
    return getattr(import_module(module), name)


def preset_config(family: str, preset: str, frames: bool = False) -> dict:
    """The config fields a named size sets for a family (`small` is each family's default config).

    With `frames`, the sizes of the family's pixel model (a model that reads frames only), which
    include `inputs="frames"`."""
    if preset not in PRESETS:
        raise WmkitError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
    cls = model_class(family)
    table = getattr(cls, "pixel_presets" if frames else "presets", None)
    if table is None:
        if frames and getattr(cls, "presets", None) is not None:
            raise WmkitError(f"the {family} model does not read frames; pixel models: rssm, transformer")
        raise WmkitError(f"the {family} model has no presets; trainable families: {', '.join(TRAINABLE)}")
    return {**table[preset], "inputs": "frames"} if frames else dict(table[preset])
