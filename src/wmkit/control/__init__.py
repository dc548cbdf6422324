"""Acting with a world model: planners that use only the WorldModel verbs."""

from wmkit.control.cem import CEMConfig, CEMPlanner

__all__ = ["CEMConfig", "CEMPlanner"]
