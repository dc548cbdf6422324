"""The command line, run as a user runs it: a real subprocess, exit codes, one-line errors."""

import json
import subprocess
import sys

import pytest


def wmkit(*args, check=True):
    proc = subprocess.run([sys.executable, "-m", "wmkit.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_help_lists_the_verbs():
    out = wmkit("--help").stdout
    for verb in ("worlds", "collect", "train", "eval", "demo", "data"):
        assert verb in out


def test_worlds_json_lists_physics():
    rows = json.loads(wmkit("worlds", "--json").stdout)
    tabletop = next(r for r in rows if r["id"] == "Tabletop-v0")
    assert {p["name"] for p in tabletop["physics"]} >= {"cup_mass", "gravity"}


@pytest.mark.parametrize("args, needle", [
    (["collect", "--world", "Atlantis-v9", "--episodes", "1", "--out", "{tmp}/a"], "unknown world 'Atlantis-v9'"),
    (["collect", "--episodes", "1", "--out", "{tmp}/b", "--physics", "cup_mass=50"], "cup_mass=50.0 is outside"),
    (["collect", "--episodes", "1", "--out", "{tmp}/c", "--physics", "heavy"], "unknown physics split 'heavy'"),
    (["data", "info", "{tmp}"], "not a wmkit dataset"),
    (["eval", "{tmp}", "--data", "{tmp}"], "not a wmkit dataset"),
])
def test_user_errors_are_one_line(tmp_path, args, needle):
    proc = wmkit(*[a.format(tmp=tmp_path) for a in args], check=False)
    assert proc.returncode == 2
    assert needle in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0


def test_eval_json_and_data_info(tabletop_run, tabletop_data, tmp_path):
    res = json.loads(wmkit("eval", tabletop_run, "--data", tabletop_data, "--json", "--plot", tmp_path / "p.png").stdout)
    assert [r["k"] for r in res["accuracy"]] == [1, 5, 10, 25, 50]
    assert all({"k", "nrmse", "skill"} <= set(r) for r in res["accuracy"])
    assert (tmp_path / "p.png").stat().st_size > 1000
    copy = json.loads(wmkit("eval", "copy-last", "--data", tabletop_data, "--json").stdout)
    assert all(r["skill"] == 0 for r in copy["accuracy"])
    info = json.loads(wmkit("data", "info", tabletop_data, "--json").stdout)
    assert info["world"] == "Tabletop-v0" and info["episodes"] >= 24


def test_train_then_resume_from_the_cli(tabletop_data, tmp_path):
    run = tmp_path / "run"
    wmkit("train", "--data", tabletop_data, "--out", run, "--steps", "20", "--batch-size", "16", "--set", "hidden=16")
    wmkit("train", "--data", tabletop_data, "--out", run, "--steps", "30", "--batch-size", "16", "--set", "hidden=16")
    meta = json.loads((run / "model" / "meta.json").read_text())
    assert meta["step"] == 30
    proc = wmkit("train", "--data", tabletop_data, "--out", run, "--steps", "40", "--set", "hidden=32", check=False)
    assert proc.returncode == 2 and "model_config" in proc.stderr


@pytest.mark.parametrize("args, needle", [
    (["collect", "--episodes", "1", "--out", "{tmp}/r", "--render", "0"], "render=0"),
    (["collect", "--episodes", "1", "--out", "{tmp}/c", "--camera", "top"], "--render"),
    (["collect", "--episodes", "1", "--out", "{tmp}/m", "--max-steps", "0"], "max_steps=0"),
    (["collect", "--world", "gym:Blackjack-v1", "--episodes", "1", "--out", "{tmp}/d"], "Tuple observation space"),
    (["train", "--data", "{tmp}", "--out", "{tmp}/file.txt"], "is a file"),
])
def test_more_user_errors(tmp_path, args, needle):
    (tmp_path / "file.txt").write_text("x")
    proc = wmkit(*[a.format(tmp=tmp_path) for a in args], check=False)
    assert proc.returncode == 2 and needle in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_bad_policy_writes_nothing(tmp_path):
    proc = wmkit("collect", "--episodes", "1", "--out", tmp_path / "p", "--policy", "greedy", check=False)
    assert proc.returncode == 2 and not (tmp_path / "p").exists()


def test_eval_windows_must_be_positive(tabletop_run, tabletop_data):
    proc = wmkit("eval", tabletop_run, "--data", tabletop_data, "--windows", "0", check=False)
    assert proc.returncode == 2 and "windows=0" in proc.stderr


def test_demo_end_to_end_on_a_tiny_budget(tmp_path):
    """`wmkit demo` on a tiny budget: data, model, report and table, with the motion prior alone beside the
    model (a prior that had broken would score no better than copy-last)."""
    out = tmp_path / "demo"
    text = wmkit("demo", "--out", out, "--episodes", "8", "--steps", "30").stdout
    assert "prior alone" in text and "next: wmkit eval" in text
    res = json.loads((out / "result.json").read_text())
    assert res["episodes"] == 8 and res["prior"]["name"] == "tabletop-soft-v1"
    prior = {r["k"]: r["skill"] for r in res["prior"]["accuracy"]}
    assert prior[1] > 0.3 and prior[50] < 1.0, prior
    assert "skill of the motion prior alone" in (out / "report.html").read_text()
    assert json.loads((out / "model" / "model" / "config.json").read_text())["config"]["prior"] == "tabletop-soft-v1"
