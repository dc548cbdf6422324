"""The one exception type for mistakes a user can fix.

The CLI prints a `WmkitError` as a single line and exits non-zero, without a traceback;
any other exception is a bug in wmkit and keeps its traceback.
"""


class WmkitError(ValueError):
    """Bad input from the user: the message names the value and says what to do."""
