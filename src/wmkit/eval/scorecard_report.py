"""The scorecard as an HTML page a person reads: one section per property, the model beside the references.

Each section has its headline numbers in a table (the model, then the `oracle` and `copy-last`
reference columns when they were scored), one sentence on what they mean, and a plot. The page is
self-contained apart from its PNG plots, which sit beside it.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from wmkit.files import atomic_write_json, atomic_write_text

# (section, headline path inside the section, label, format, what it means)
HEADLINES = [
    ("accuracy", ("by_k", 0, "skill"), "skill at k=1", "{:.3f}", "higher"),
    ("accuracy", ("by_k", 2, "skill"), "skill at k=10", "{:.3f}", "higher"),
    ("accuracy", ("by_k", 3, "skill"), "skill at k=25", "{:.3f}", "higher"),
    ("accuracy", ("calibration", "by_k", 0, "coverage_90"), "90% band coverage at k=1 (ideal 0.9)", "{:.3f}", "0.9"),
    ("causality", ("leak", "passed"), "leak test passed", "{}", "true"),
    ("causality", ("leak", "max_abs_diff"), "leak: max change before t", "{:.2e}", "lower"),
    ("causality", ("interventional", "r2"), "interventional R^2", "{:.3f}", "higher"),
    ("causality", ("interventional", "order_agreement"), "outcome pairs ordered right", "{:.3f}", "higher"),
    ("causality", ("pushes", "r2"), "mid-rollout pushes R^2", "{:.3f}", "higher"),
    ("causality", ("exposure_gap", "ratio"), "exposure gap at k=25 (open / teacher-forced)", "{:.2f}", "1"),
    ("controllability", ("delta_db", "by_k", 0, "delta_db"), "delta dB at k=4", "{:.1f}", "higher"),
    ("controllability", ("delta_db", "by_k", 1, "delta_db"), "delta dB at k=16", "{:.1f}", "higher"),
    ("controllability", ("sensitivity", "median_ratio"), "sensitivity ratio (ideal 1)", "{:.3f}", "1"),
    ("controllability", ("action_recovery", "ratio"), "action recovery, imagined / real", "{:.3f}", "higher"),
    ("persistence", ("drift", "steps_within_threshold"), "steps before error passes 0.5", "{}", "higher"),
    ("persistence", ("drift", "nrmse_at", "100"), "error at step 100", "{:.3f}", "lower"),
    ("persistence", ("drift", "distribution_distance_at", "100"), "distribution distance at step 100", "{:.3f}",
     "lower"),
    ("persistence", ("memory", "by_span", 0, "recall"), "memory recall, blind span 16 (ideal 1)", "{:.3f}", "higher"),
    ("persistence", ("memory", "by_span", 1, "recall"), "memory recall, blind span 64", "{:.3f}", "higher"),
    ("persistence", ("memory", "by_span", 2, "recall"), "memory recall, blind span 256", "{:.3f}", "higher"),
    ("realtime", ("latency", "p50_ms"), "batch-1 step p50 (ms)", "{:.3f}", "lower"),
    ("realtime", ("latency", "p99_ms"), "batch-1 step p99 (ms)", "{:.3f}", "lower"),
    ("realtime", ("throughput", "steps_per_s"), "imagined steps/s at batch 1,024", "{:,.0f}", "higher"),
    ("physics", ("id_nrmse",), "in-distribution error at k=10", "{:.3f}", "lower"),
    ("physics", ("id_skill",), "in-distribution skill at k=10", "{:.3f}", "higher"),
    ("physics", ("splits", "ood", "ratio"), "OOD / ID error (ood split)", "{:.2f}", "lower"),
    ("physics", ("splits", "ood", "skill"), "skill on the ood split", "{:.3f}", "higher"),
    ("physics", ("splits", "combo_test", "ratio"), "OOD / ID error (combo_test split)", "{:.2f}", "lower"),
    ("physics", ("splits", "combo_test", "skill"), "skill on the combo_test split", "{:.3f}", "higher"),
    ("planning", ("planning_ratio",), "planning ratio (1 = as good as the simulator)", "{:.2f}", "higher"),
    ("planning", ("returns", "model"), "return, planning in the model", "{:.2f}", "higher"),
    ("planning", ("success_rate", "model"), "success rate, planning in the model", "{:.2f}", "higher"),
]

MEANING = {
    "accuracy": "How close open-loop imagination stays to the truth as the horizon grows: skill 1 is exact, "
                "0 is no better than predicting that nothing moves.",
    "causality": "Predictions must not depend on future actions (leak), and changing the actions must change the "
                 "imagined outcome the way it changes the true one (interventional R^2, pairs ordered right).",
    "controllability": "Actions must matter, by the right amount: imagining under someone else's actions should "
                       "cost accuracy (delta dB), and imagined differences between two action sequences should "
                       "match the true ones (sensitivity 1).",
    "persistence": "How long imagination stays near the truth, whether its states stay plausible (a small "
                   "distribution distance) long after pointwise error has saturated, and whether it remembers "
                   "an early detail that decides a late outcome (memory recall, on worlds with a cue).",
    "realtime": "Time to answer one action, against the latency budgets of VR (20 ms), games (100 ms) and the "
                "world's own control period, and how much it can imagine per second in a batch.",
    "physics": "Error on physics never seen in training, over error on the physics it was trained on: "
               "1 means the model transfers, larger means it extrapolates badly.",
    "planning": "The same planner acting in the true world, imagining with the model vs with the true simulator: "
                "a planning ratio of 1 means the model is as useful for acting as the simulator itself.",
}


def lookup(card: dict, section: str, path: tuple):
    """The value at `path` inside `card[section]`, or None when it is missing or skipped."""
    node = card.get(section)
    for key in path:
        if isinstance(node, dict):
            node = node.get(key)
        elif isinstance(node, list) and isinstance(key, int) and key < len(node):
            node = node[key]
        else:
            return None
    return node


def _fmt(value, fmt: str) -> str:
    if value is None:
        return "—"
    try:
        return fmt.format(value)
    except (ValueError, TypeError):
        return str(value)


def _skips(card: dict, section: str) -> list[str]:
    """Every `skipped` reason inside a section, as 'where: why'."""
    found = []

    def walk(node, where):
        if isinstance(node, dict):
            if "skipped" in node:
                found.append(f"{where or section}: {node['skipped']}")
            for k, v in node.items():
                walk(v, f"{where}.{k}" if where else k)

    walk(card.get(section, {}), "")
    return found


def write_scorecard_report(cards: dict[str, dict], out: str | Path) -> Path:
    """Write `out/scorecard.json` (all columns) and `out/index.html` with a plot per section."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "scorecard.json", cards)
    main_name = next(iter(cards))
    main = cards[main_name]
    plots = _plots(cards, out)
    names = list(cards)
    parts = [f"<h1>wmkit scorecard: {html.escape(main_name)} on {html.escape(main['world'])}</h1>",
             f"<p class=meta>suite <b>{html.escape(main['suite'])}</b> · data {html.escape(main['data'])} · "
             f"{main['seconds']:.0f} s · machine: {html.escape(main['machine']['processor'] or '')}, "
             f"{main['machine']['cpus']} CPUs, torch {html.escape(main['machine']['torch'])}"
             f"{', ' + html.escape(main['machine']['cuda']) if main['machine'].get('cuda') else ''}</p>"]
    from wmkit.eval.scorecard import SECTIONS

    for section in SECTIONS:
        if section not in main:
            continue
        rows = [h for h in HEADLINES if h[0] == section]
        head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
        body = ""
        for _, path, label, fmt, better in rows:
            cells = "".join(f"<td>{_fmt(lookup(cards[n], section, path), fmt)}</td>" for n in names)
            body += f"<tr><td>{html.escape(label)}</td>{cells}<td class=better>{html.escape(better)}</td></tr>"
        skipped = "".join(f"<li>{html.escape(s)}</li>" for s in _skips(main, section))
        img = f'<img src="{plots[section]}" alt="{section} plot">' if section in plots else ""
        parts.append(
            f'<section id="{section}"><h2>{section}</h2><p>{html.escape(MEANING[section])}</p>'
            f"<table><tr><th>metric</th>{head}<th>better</th></tr>{body}</table>"
            + (f"<p>Not measured for {html.escape(main_name)}:</p><ul class=skips>{skipped}</ul>" if skipped else "")
            + f"{img}</section>"
        )
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>wmkit scorecard</title><style>
body{{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;color:#222}}
h1{{font-size:1.5em}} h2{{text-transform:capitalize;border-bottom:1px solid #ddd;padding-bottom:.2em}}
table{{border-collapse:collapse;margin:.6em 0}} td,th{{border:1px solid #ccc;padding:.25em .6em;text-align:right}}
td:first-child,th:first-child{{text-align:left}} .better{{color:#777;font-size:.9em}}
.meta{{color:#555}} .skips{{color:#a33}} img{{max-width:100%;display:block;margin:.5em 0}}
</style></head><body>{''.join(parts)}
<p class=meta>Raw numbers: <a href="scorecard.json">scorecard.json</a>. What each metric means: docs/scorecard.md.</p>
</body></html>"""
    atomic_write_text(out / "index.html", page)
    return out / "index.html"


def _plots(cards: dict[str, dict], out: Path) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = {}

    def save(fig, section):
        fig.tight_layout()
        fig.savefig(out / f"{section}.png", dpi=100)
        plt.close(fig)
        made[section] = f"{section}.png"

    def bars(section, title, ylabel, values: dict[str, float], ref=None):
        values = {k: v for k, v in values.items() if v is not None}
        if not values:
            return
        fig, ax = plt.subplots(figsize=(6, 2.8))
        ax.bar(list(values), list(values.values()), color=["C0", "C2", "C7", "C1", "C3"][: len(values)])
        if ref is not None:
            ax.axhline(ref, color="k", lw=0.8, ls="--")
        ax.set(title=title, ylabel=ylabel)
        ax.grid(axis="y", alpha=0.3)
        save(fig, section)

    def curves(section, title, xlabel, series: dict[str, tuple[list, list]], threshold=None, marker=None):
        """One line per column, log x axis."""
        if not series:
            return
        fig, ax = plt.subplots(figsize=(6, 3))
        for name, (x, y) in series.items():
            ax.plot(x, y, marker=marker, label=name)
        if threshold is not None:
            ax.axhline(threshold, color="k", lw=0.8, ls="--")
        ax.set(xscale="log", xlabel=xlabel, ylabel="normalised RMSE", title=title)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        save(fig, section)

    accuracy = {n: lookup(c, "accuracy", ("by_k",)) for n, c in cards.items()}
    curves("accuracy", "open-loop error vs horizon", "horizon k",
           {n: ([r["k"] for r in rows], [r["nrmse"] for r in rows]) for n, rows in accuracy.items() if rows},
           marker="o")
    bars("causality", "interventional R^2 (1 = as the truth)", "R^2",
         {n: lookup(c, "causality", ("interventional", "r2")) for n, c in cards.items()}, ref=1.0)
    bars("controllability", "delta dB at k=4 (0 = blind to actions)", "dB",
         {n: lookup(c, "controllability", ("delta_db", "by_k", 0, "delta_db")) for n, c in cards.items()})
    drift = {n: lookup(c, "persistence", ("drift", "curve")) for n, c in cards.items()}
    curves("persistence", "drift over a long rollout", "imagined step",
           {n: (d["step"], d["nrmse"]) for n, d in drift.items() if d}, threshold=0.5)
    bars("realtime", "batch-1 step latency, p99 (ms)", "ms",
         {n: lookup(c, "realtime", ("latency", "p99_ms")) for n, c in cards.items()})
    main = next(iter(cards.values()))
    phys = {"in distribution": lookup(main, "physics", ("id_nrmse",))}
    for split, row in (lookup(main, "physics", ("splits",)) or {}).items():
        phys[split] = row.get("nrmse") if isinstance(row, dict) else None
    bars("physics", "error at k=10 by physics split", "normalised RMSE", phys)
    rets = lookup(main, "planning", ("returns",)) or {}
    bars("planning", "return of the same planner", "return",
         {"model": rets.get("model"), "simulator": rets.get("oracle"), "random": rets.get("random")})
    return made


def load_scorecard(path: str | Path) -> dict:
    """A scorecard JSON (a report folder, its scorecard.json, or an `eval --json` output file)."""
    p = Path(path)
    if p.is_dir():
        p = p / "scorecard.json" if (p / "scorecard.json").exists() else p / "scorecard" / "scorecard.json"
    from wmkit.errors import WmkitError

    if not p.exists():
        raise WmkitError(f"no scorecard at {path}; run `wmkit eval RUN --data DIR --suite quick` first")
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise WmkitError(f"{p} is not valid JSON ({e}); run `wmkit eval` again to rewrite it") from None
