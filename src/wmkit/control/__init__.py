"""Acting with a world model: planners that use only the WorldModel verbs."""

from wmkit.control.base import Objective, Planner, PlannerPolicy, predicted_return
from wmkit.control.cem import CEMConfig, CEMPlanner, DiscreteCEMConfig, DiscreteCEMPlanner
from wmkit.control.dream import DreamEnv
from wmkit.control.icem import ICEMConfig, ICEMPlanner
from wmkit.control.mppi import MPPIConfig, MPPIPlanner
from wmkit.control.safety import SafetyFilter

PLANNERS = {"cem": (CEMPlanner, CEMConfig), "icem": (ICEMPlanner, ICEMConfig), "mppi": (MPPIPlanner, MPPIConfig),
            "cem-discrete": (DiscreteCEMPlanner, DiscreteCEMConfig)}


def make_planner(name: str, model, objective: Objective | None = None, safety: SafetyFilter | None = None,
                 prior=None, **config) -> Planner:
    """A planner by name ("cem", "icem", "mppi", "cem-discrete") over `model`, its config fields given as
    keywords. "cem" on a model of discrete actions is "cem-discrete". `prior`: a policy's proposals
    (Planner's docstring), for the continuous planners."""
    from wmkit.errors import WmkitError

    if name not in PLANNERS:
        raise WmkitError(f"unknown planner {name!r}; choose one of {', '.join(PLANNERS)}")
    if name == "cem" and getattr(model.spec, "action_kind", "continuous") == "discrete":
        name = "cem-discrete"
    planner, config_class = PLANNERS[name]
    fields = set(config_class.__dataclass_fields__)
    unknown = sorted(set(config) - fields)
    if unknown:
        raise WmkitError(f"{name} config has no field {', '.join(unknown)}; fields: {', '.join(sorted(fields))}")
    return planner(model, config_class(**config), objective, safety, prior)


__all__ = ["PLANNERS", "CEMConfig", "CEMPlanner", "DiscreteCEMConfig", "DiscreteCEMPlanner", "DreamEnv", "ICEMConfig", "ICEMPlanner", "MPPIConfig", "MPPIPlanner",
           "Objective", "Planner", "PlannerPolicy", "SafetyFilter", "make_planner", "predicted_return"]
