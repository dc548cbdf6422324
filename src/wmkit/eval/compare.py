"""`wmkit compare A B`: per-metric deltas between two scorecards, and whether B is worse than A.

Every headline metric of the report is compared in its own direction (higher is better, lower is
better, or closer to an ideal value). B is worse on a metric when it loses by more than the
tolerance, relative to A's value (or to A's distance from the ideal), with an absolute floor of 0.01
so that metrics near zero do not flip on noise. Timings vary from run to run on a shared machine,
so the real-time metrics gate at a tolerance of at least 50%. A metric missing or skipped on either
side is listed but never gates.
"""

from __future__ import annotations

from wmkit.eval.scorecard_report import HEADLINES, lookup

TIMING_TOLERANCE = 0.5
ABS_FLOOR = 0.01


def compare_cards(a: dict, b: dict, tolerance: float = 0.05) -> tuple[list[dict], bool]:
    rows, worse_any = [], False
    for section, path, label, _, better in HEADLINES:
        va, vb = lookup(a, section, path), lookup(b, section, path)
        row = {"section": section, "metric": label, "a": va, "b": vb, "better": better}
        if va is None or vb is None:
            row["verdict"] = "missing"
            rows.append(row)
            continue
        tol = max(tolerance, TIMING_TOLERANCE) if section == "realtime" else tolerance
        if better == "true":
            worse = bool(va) and not bool(vb)
            row["delta"] = None
        else:
            va, vb = float(va), float(vb)
            row["delta"] = vb - va
            if better == "higher":
                worse = vb < va - max(tol * abs(va), ABS_FLOOR)
                improved = vb > va + max(tol * abs(va), ABS_FLOOR)
            elif better == "lower":
                worse = vb > va + max(tol * abs(va), ABS_FLOOR)
                improved = vb < va - max(tol * abs(va), ABS_FLOOR)
            else:  # closer to an ideal value
                ideal = float(better)
                da, db = abs(va - ideal), abs(vb - ideal)
                worse = db > da + max(tol * da, ABS_FLOOR)
                improved = db < da - max(tol * da, ABS_FLOOR)
            if not worse and improved:
                row["verdict"] = "better"
        if better == "true" and not worse:
            row["verdict"] = "better" if (not va and vb) else "same"
        row.setdefault("verdict", "worse" if worse else "same")
        worse_any |= worse
        rows.append(row)
    return rows, worse_any
