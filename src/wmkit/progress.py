"""The progress bar shared by long-running commands (collect, train)."""

from __future__ import annotations


def progress_bar(enabled: bool, *extra_columns: str):
    """A rich Progress with description, bar, n/total, any extra text columns, and time left."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               *(TextColumn(c) for c in extra_columns), TimeRemainingColumn()]
    return Progress(*columns, disable=not enabled)
