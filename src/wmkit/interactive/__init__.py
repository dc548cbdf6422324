"""Interactive worlds: step a world model frame by frame beside its true twin, fork, rewind, intervene."""

from wmkit.interactive.session import Session, StepResult, step_together

__all__ = ["Session", "StepResult", "step_together"]
