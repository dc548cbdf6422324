"""The one exception type for mistakes a user can fix.

The CLI prints a `WmkitError` as a single line and exits non-zero, without a traceback;
any other exception is a bug in wmkit and keeps its traceback.
"""


class WmkitError(ValueError):
    """Bad input from the user: the message names the value and says what to do."""


def check_fields(obj, where: str, positive_ints=(), nonnegative=(), nonnegative_ints=()) -> None:
    """Refuse config fields that are not positive integers / finite numbers >= 0 / whole numbers >= 0,
    naming the field."""
    import math

    for names, least, what in ((positive_ints, 1, "a positive integer"), (nonnegative_ints, 0, "a whole number >= 0")):
        for name in names:
            v = getattr(obj, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < least:
                raise WmkitError(f"{where}: {name}={v!r} must be {what}")
    for name in nonnegative:
        v = getattr(obj, name)
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not (0 <= v < math.inf):
            raise WmkitError(f"{where}: {name}={v!r} must be a finite number >= 0")
