"""`wmkit eval --suite`, its HTML report (opened in a real headless Chromium) and `wmkit compare`."""

import json
import shutil
from pathlib import Path

import pytest

from test_cli import wmkit

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SECTIONS = ("accuracy", "causality", "controllability", "persistence", "realtime", "physics", "planning")


@pytest.fixture(scope="module")
def scored(tabletop_run, tabletop_data, tmp_path_factory):
    """The trained fixture model scored by the quick suite from the command line, with reference columns."""
    report = tmp_path_factory.mktemp("scorecard") / "report"
    proc = wmkit("eval", tabletop_run, "--data", tabletop_data, "--suite", "quick", "--json", "--report", report)
    return json.loads(proc.stdout), report


def test_quick_suite_json_carries_every_section(scored):
    card, report = scored
    for section in SECTIONS:
        assert section in card, section
    assert card["suite"] == "quick" and card["report"] == str(report / "index.html")
    assert card["seconds"] < 60, card["seconds"]  # the budget for --suite quick on this machine
    columns = json.loads((report / "scorecard.json").read_text())
    assert list(columns)[0].endswith("/ensemble") and list(columns)[1:] == ["oracle", "copy-last"], list(columns)
    assert columns["oracle"]["planning"]["planning_ratio"] == 1.0  # the oracle is the planning reference
    assert "predicts no reward" in columns["copy-last"]["planning"]["skipped"]


def test_compare_gates_a_worse_model(scored, tabletop_data, tmp_path):
    _, report = scored
    same = wmkit("compare", report, report)
    assert "not worse" in same.stdout
    wmkit("eval", "copy-last", "--data", tabletop_data, "--suite", "quick", "--no-references", "--report",
          tmp_path / "copy")
    worse = wmkit("compare", report, tmp_path / "copy", "--json", check=False)
    assert worse.returncode == 1
    rows = json.loads(worse.stdout)["metrics"]
    skill = next(r for r in rows if r["metric"] == "skill at k=10")
    assert skill["verdict"] == "worse" and skill["b"] == 0.0
    back = json.loads(wmkit("compare", tmp_path / "copy", report, "--json", check=False).stdout)["metrics"]
    assert next(r for r in back if r["metric"] == "skill at k=10")["verdict"] == "better"


def test_compare_and_eval_bad_input(scored, tabletop_run, tabletop_data, tmp_path):
    _, report = scored
    proc = wmkit("compare", report, tmp_path / "nothing", check=False)
    assert proc.returncode == 2 and "no scorecard at" in proc.stderr
    proc = wmkit("eval", tabletop_run, "--data", tabletop_data, "--suite", "huge", check=False)
    assert proc.returncode == 2 and "unknown suite 'huge'" in proc.stderr and "Traceback" not in proc.stderr
    proc = wmkit("collect", "--episodes", "1", "--out", tmp_path / "s", "--split", "nowhere", check=False)
    assert proc.returncode == 2 and "unknown physics split 'nowhere'" in proc.stderr and "combo_test" in proc.stderr


def test_collect_split_samples_that_split(tmp_path):
    wmkit("collect", "--world", "Pendulum-v1", "--episodes", "3", "--out", tmp_path / "d", "--split", "ood",
          "--max-steps", "5")
    import wmkit as wm

    for ep in wm.load_dataset(tmp_path / "d").episodes:
        assert ep.physics["mass"] <= 0.5 or ep.physics["mass"] >= 1.5, ep.physics


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt install chromium); report not opened")
def test_report_reads_well_in_chromium(scored):
    from playwright.sync_api import sync_playwright

    _, report = scored
    shot = report / "screenshot.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.goto((report / "index.html").resolve().as_uri())
        ids = page.eval_on_selector_all("section", "els => els.map(e => e.id)")
        broken = page.eval_on_selector_all("img", "imgs => imgs.filter(i => !(i.complete && i.naturalWidth > 0))"
                                                  ".map(i => i.src)")
        cells = page.eval_on_selector_all("#accuracy table tr", "rows => rows.length")
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert ids == list(SECTIONS)
    assert not broken, broken
    assert cells >= 4
    assert Path(shot).stat().st_size > 20_000
