"""The demo's report: one HTML page with the accuracy table, the plot and the filmstrips."""

from __future__ import annotations

import html
import json
from pathlib import Path


def write_report(folder: Path, title: str, accuracy: dict, plot: str | None, strips: list[str],
                 strip_caption: str, notes: list[str]) -> Path:
    prior = accuracy.get("prior", {}).get("accuracy")  # the model's motion prior alone, where it has one
    rows = "".join(
        f"<tr><td>{r['k']}</td><td>{r['nrmse']:.4f}</td><td>{r['nrmse_copy_last']:.4f}</td>"
        f"<td><b>{r['skill']:.3f}</b></td>" + (f"<td>{prior[i]['skill']:.3f}</td>" if prior else "") + "</tr>"
        for i, r in enumerate(accuracy["accuracy"])
    )
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        "<style>body{font:15px/1.5 system-ui,sans-serif;max-width:980px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}"
        "img{max-width:100%;border:1px solid #ddd}code{background:#f4f4f4;padding:1px 4px}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        "<h2>Open-loop accuracy on held-out episodes</h2>",
        "<p>The model observes one step, then imagines k steps under the logged actions. "
        "nRMSE is the error per state dimension divided by that dimension's spread; skill = 1 - "
        "nRMSE(model) / nRMSE(copy-last): 1 is perfect, 0 is no better than predicting that nothing moves.</p>",
        "<table><tr><th>k</th><th>nRMSE model</th><th>nRMSE copy-last</th><th>skill</th>"
        + ("<th>skill of the motion prior alone</th>" if prior else "") + "</tr>", rows, "</table>",
    ]
    if plot:
        parts.append(f"<p><img src='{html.escape(plot)}' alt='error and skill vs horizon'></p>")
    if strips:
        parts += ["<h2>Truth vs imagination</h2>", f"<p>{html.escape(strip_caption)}</p>"]
        parts += [f"<p><img src='{html.escape(s)}' alt='filmstrip: truth above, model below' "
                  f"style='width:100%'></p>" for s in strips]
    parts += ["<h2>Notes</h2><ul>", *[f"<li>{html.escape(n)}</li>" for n in notes], "</ul>",
              f"<details><summary>raw JSON</summary><pre>{html.escape(json.dumps(accuracy, indent=2))}</pre></details>",
              "</body></html>"]
    path = Path(folder) / "report.html"
    path.write_text("\n".join(parts))
    return path
