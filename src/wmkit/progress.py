"""The progress bar shared by long-running commands (collect, train)."""

from __future__ import annotations


def progress_bar(enabled: bool, *extra_columns: str, time_left: bool = True):
    """A rich Progress with description, bar, n/total, any extra text columns, and (unless the caller
    shows its own) rich's estimate of the time left."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               *(TextColumn(c) for c in extra_columns), *([TimeRemainingColumn()] if time_left else [])]
    return Progress(*columns, disable=not enabled)
