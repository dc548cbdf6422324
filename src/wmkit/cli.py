"""`wmkit`: the command line. Thin: parse, call the library, print.

Nothing heavy is imported at module level, so `wmkit --help` answers at once. A `WmkitError` (bad
input) prints one line and exits with status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from wmkit.demo import DemoConfig  # a dataclass of defaults (stdlib only): `wmkit demo` and run_demo share them
from wmkit.errors import WmkitError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="wmkit: learn a world model of your environment, measure it, play it, act with it.")
data_app = typer.Typer(no_args_is_help=True, help="Inspect datasets.")
app.add_typer(data_app, name="data")


def _print_json(obj) -> None:
    typer.echo(json.dumps(obj, indent=2))


def _print_accuracy(rows: list[dict], prior: list[dict] | None = None) -> None:
    """The accuracy table; with `prior`, the skill of the model's motion prior alone beside it."""
    extra = f" {'prior alone':>12}" if prior else ""
    typer.echo(f"{'k':>4} {'nRMSE':>9} {'copy-last':>10} {'skill':>7}{extra}")
    for i, r in enumerate(rows):
        extra = f" {prior[i]['skill']:>12.3f}" if prior else ""
        typer.echo(f"{r['k']:>4} {r['nrmse']:>9.4f} {r['nrmse_copy_last']:>10.4f} {r['skill']:>7.3f}{extra}")


def _parse_physics(value: Optional[str]):
    """'train' (a split) or 'cup_mass=0.3,gravity=9.0' (explicit values)."""
    if value is None:
        return None
    if "=" not in value:
        return value
    out = {}
    for part in value.split(","):
        key, sep, val = part.partition("=")
        if not sep:
            raise WmkitError(f"--physics {value!r}: write name=value pairs separated by commas, or a split name")
        try:
            out[key.strip()] = float(val)
        except ValueError:
            raise WmkitError(f"--physics: {key.strip()}={val!r} is not a number") from None
    return out


def _span(value) -> str:
    """[lo, hi] -> 'lo-hi'; a list of spans -> 'lo-hi | lo-hi'; None -> ''."""
    if not value:
        return ""
    if isinstance(value[0], list):
        return " | ".join(_span(v) for v in value)
    return f"{value[0]:g}-{value[1]:g}"


@app.command()
def worlds(as_json: bool = typer.Option(False, "--json", help="print JSON")):
    """List the registered worlds with their physics parameters, ranges and splits."""
    from wmkit.worlds import list_worlds

    rows = list_worlds()
    if as_json:
        return _print_json(rows)
    from rich.console import Console
    from rich.table import Table

    splits = list(dict.fromkeys(k for w in rows for p in w["physics"] for k in p
                                if k not in ("name", "default", "range", "doc")))
    table = Table(title="wmkit worlds (also any Gymnasium id as gym:<id>)")
    for col in ("id", "dt (s)", "physics parameter", "default", "valid", *(f"{s} split" for s in splits)):
        table.add_column(col, no_wrap=True)
    for w in rows:
        params = w["physics"] or [{"name": "(none)", "default": "", "range": None}]
        for j, p in enumerate(params):
            table.add_row(w["id"] if j == 0 else "", f"{w['dt']:g}" if j == 0 else "", p["name"],
                          f"{p['default']:g}" if p["range"] else "", _span(p["range"]),
                          *(_span(p.get(s)) for s in splits))
    Console().print(table)


@app.command()
def collect(
    world: str = typer.Option("Tabletop-v0", help="world id (see `wmkit worlds`)"),
    episodes: int = typer.Option(..., help="episodes to collect (appended to --out)"),
    out: Path = typer.Option(..., help="dataset folder"),
    policy: str = typer.Option("noise", help="random | noise (temporally correlated)"),
    seed: int = typer.Option(0, help="base seed; episode i is seeded from (seed, i)"),
    render: Optional[int] = typer.Option(None, help="also store frames of this size, e.g. 64"),
    camera: Optional[list[str]] = typer.Option(None, help="camera(s) to store frames from"),
    physics: Optional[str] = typer.Option(None, help="split name (train, ood) or name=value,..."),
    split: Optional[str] = typer.Option(None, help="physics split to sample each episode from (see `wmkit worlds`)"),
    max_steps: Optional[int] = typer.Option(None, help="episode length limit"),
):
    """Run a policy in a world and append episodes to a dataset folder."""
    from wmkit.data.collect import collect as run

    if split is not None and physics is not None:
        raise WmkitError(f"give --split {split} or --physics {physics}, not both")
    if split is not None and "=" in split:
        raise WmkitError(f"--split takes a split name such as train or ood, not values ({split!r}); use --physics")
    run(world, episodes, out, policy=policy, seed=seed, render=render, cameras=camera,
        physics=split if split is not None else _parse_physics(physics), max_steps=max_steps)
    from wmkit.data import load_dataset

    s = load_dataset(out).summary()
    typer.echo(f"{out}: {s['episodes']} episodes, {s['transitions']} transitions of {s['world']}")


@data_app.command("info")
def data_info(path: Path, as_json: bool = typer.Option(False, "--json", help="print JSON")):
    """Summarise a dataset folder."""
    from wmkit.data import load_dataset

    s = load_dataset(path).summary()
    if as_json:
        return _print_json(s)
    for k, v in s.items():
        typer.echo(f"{k:>20}: {v}")


@app.command()
def train(
    data: Path = typer.Option(..., help="dataset folder from `wmkit collect`"),
    out: Path = typer.Option(..., help="run folder (resumed if it exists)"),
    model: str = typer.Option("ensemble", help="model family: ensemble, rssm, transformer"),
    preset: str = typer.Option("small", help="model size: tiny | small | base (--set fields override it)"),
    frames: bool = typer.Option(False, "--frames", help="a pixel model: read frames only (rssm, transformer; "
                                                        "the dataset needs --render)"),
    steps: int = typer.Option(3000, help="gradient steps in total"),
    minutes: Optional[float] = typer.Option(None, help="wall-clock budget, counted across resumes"),
    batch_size: Optional[int] = typer.Option(None, help="windows per step [default: 256, pixel models 16]"),
    lr: float = typer.Option(1e-3),
    lr_end: float = typer.Option(1.0, help="final learning rate as a share of --lr (cosine decay); 1 = constant"),
    focus: float = typer.Option(3.0, help="oversample windows where the state changes most; 0 = uniform"),
    seed: int = typer.Option(0),
    device: str = typer.Option("auto", help="auto | cpu | cuda"),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="model config field, e.g. --set members=7"),
):
    """Train a world model; Ctrl-C checkpoints, and running again resumes exactly."""
    from wmkit.models import preset_config
    from wmkit.train import TrainConfig, train as run

    sets = {}
    for item in set_ or []:
        key, sep, val = item.partition("=")
        if not sep:
            raise WmkitError(f"--set {item!r}: write field=value")
        try:
            sets[key] = json.loads(val)
        except json.JSONDecodeError:
            sets[key] = val
    frames = frames or sets.get("inputs") == "frames"
    overrides = {**preset_config(model, preset, frames=frames), **sets}
    batch_size = batch_size or (16 if frames else 256)
    cfg = TrainConfig(steps=steps, minutes=minutes, batch_size=batch_size, lr=lr, lr_end=lr_end, focus=focus,
                      seed=seed, device=device)
    run(data, out, model, cfg, model_config=overrides)
    typer.echo(f"model saved in {out / 'model'}; next: wmkit eval {out} --data {data}")


@app.command("eval")
def eval_(
    run: str = typer.Argument(..., help="run or model folder, or a reference: oracle, copy-last, motion-prior"),
    data: Path = typer.Option(..., help="dataset folder (its validation episodes are used)"),
    suite: Optional[str] = typer.Option(None, help="quick | full: the five-property scorecard (else accuracy only)"),
    report: Optional[Path] = typer.Option(None, help="scorecard report folder (default RUN/scorecard)"),
    references: bool = typer.Option(True, help="score oracle and copy-last too, as reference columns"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
    plot: Optional[Path] = typer.Option(None, help="error/skill plot (PNG); default RUN/accuracy.png for a run"),
    windows: int = typer.Option(256, help="held-out windows to score"),
):
    """Accuracy vs horizon (k = 1, 5, 10, 25, 50); with --suite, the whole five-property scorecard."""
    from wmkit.data import load_dataset
    from wmkit.models import load_model

    dataset = load_dataset(data)
    model = load_model(run, world=dataset.world)
    if model.spec.world != dataset.world:
        raise WmkitError(f"the model was trained on {model.spec.world} but {data} holds {dataset.world}")
    pixels = None
    if model.spec.frame_size:  # a pixel model reads frames: load them, and score frames too
        if dataset.meta.frame_size != model.spec.frame_size:
            raise WmkitError(f"the model reads {model.spec.frame_size}x{model.spec.frame_size} frames but {data} holds "
                             f"{'none' if not dataset.meta.frame_size else dataset.meta.frame_size}; evaluate on data "
                             f"collected with --render {model.spec.frame_size}")
        if suite is not None:
            raise WmkitError("the scorecard does not score pixel models yet; drop --suite for accuracy, PSNR and SSIM")
        dataset = load_dataset(data, frames=True)
    if suite is not None:
        return _scorecard(run, model, dataset, suite, report, references, as_json)
    from wmkit.eval.accuracy import evaluate_accuracy, plot_accuracy

    acc = evaluate_accuracy(model, dataset, windows=windows)
    if model.spec.frame_size:
        from wmkit.eval.pixels import evaluate_frames

        pixels = evaluate_frames(model, dataset, windows=min(windows, 64))
    if plot is None and Path(run).is_dir():
        plot = Path(run) / "accuracy.png"
    if plot:
        plot_accuracy({Path(run).name: acc}, plot)
    if as_json:
        return _print_json({"model": run, "data": str(data), "world": dataset.world, "accuracy": acc.to_json(),
                            "pixels": pixels, "plot": str(plot) if plot else None})
    _print_accuracy(acc.to_json())
    if pixels:
        typer.echo(f"\n{'k':>4}{'PSNR':>9}{'copy-last':>11}{'SSIM':>8}{'copy-last':>11}")
        for r in pixels["by_k"]:
            typer.echo(f"{r['k']:>4}{r['psnr']:>9.2f}{r['psnr_copy_last']:>11.2f}{r['ssim']:>8.3f}"
                       f"{r['ssim_copy_last']:>11.3f}")
    if plot:
        typer.echo(f"plot: {plot}")


def _scorecard(run, model, dataset, suite, report, references, as_json) -> None:
    from wmkit.eval.scorecard import SECTIONS, evaluate, get_suite
    from wmkit.eval.scorecard_report import HEADLINES, lookup, write_scorecard_report
    from wmkit.models import reference_model

    get_suite(suite)  # an unknown suite fails before any work
    say = None if as_json else (lambda msg: typer.echo(msg, err=True))
    name = "/".join(Path(run).parts[-2:]) if Path(run).is_dir() else str(run)
    if say:
        say(f"scoring {name} ({suite} suite)")
    cards = {name: evaluate(model, dataset, suite, say=say)}
    if references:
        for ref in ("oracle", "copy-last"):
            if ref == name:
                continue
            if say:
                say(f"scoring reference {ref}")
            # the oracle is the planning reference itself: its planning ratio is 1 by definition
            sections = [s for s in cards[name] if s in SECTIONS and not (ref == "oracle" and s == "planning")]
            cards[ref] = evaluate(reference_model(ref, dataset.world), dataset, suite, sections=sections, say=say)
        plan = cards[name].get("planning", {})
        if "oracle" in cards and "returns" in plan:  # the oracle's column: its half of the model's planning run
            cards["oracle"]["planning"] = {
                "planning_ratio": 1.0, "returns": {"model": plan["returns"]["oracle"]},
                "success_rate": {"model": plan.get("success_rate", {}).get("oracle")},
                "note": "the simulator half of the model's planning run (the reference the ratio divides by)"}
    if report is None:
        report = Path(run) / "scorecard" if Path(run).is_dir() else Path(f"scorecard-{Path(name).name}")
    page = write_scorecard_report(cards, report)
    if as_json:
        return _print_json({**cards[name], "report": str(page)})
    names = list(cards)
    typer.echo(f"{'metric':<48}" + "".join(f"{n[:14]:>15}" for n in names))
    for section, path, label, fmt, _ in HEADLINES:
        vals = [lookup(cards[n], section, path) for n in names]
        if all(v is None for v in vals):
            continue
        cells = "".join(f"{'—' if v is None else _fmt_cell(v, fmt):>15}" for v in vals)
        typer.echo(f"{section[:12] + ': ' + label:<48}"[:48] + cells)
    skipped = [s for s in SECTIONS if "skipped" in cards[name].get(s, {})]
    for s in skipped:
        typer.echo(f"skipped {s}: {cards[name][s]['skipped']}")
    typer.echo(f"report: {page}  ({cards[name]['seconds']:.0f} s for {name})")


def _fmt_cell(v, fmt: str) -> str:
    try:
        return fmt.format(v)
    except (ValueError, TypeError):
        return str(v)


@app.command()
def compare(
    run_a: Path = typer.Argument(..., help="baseline: a run folder (RUN/scorecard) or a scorecard folder/JSON"),
    run_b: Path = typer.Argument(..., help="candidate, the same way"),
    tolerance: float = typer.Option(0.05, help="relative loss allowed before a metric counts as worse"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
):
    """Per-metric deltas between two scorecards; exits 1 when B is worse than A on any metric."""
    from wmkit.eval.compare import compare_cards
    from wmkit.eval.scorecard_report import load_scorecard

    if not (0 <= tolerance < 10):
        raise WmkitError(f"--tolerance {tolerance} must be between 0 and 10 (0.05 = 5%)")
    a, b = (next(iter(load_scorecard(p).values())) for p in (run_a, run_b))
    if a.get("world") != b.get("world"):
        raise WmkitError(f"{run_a} scores {a.get('world')} but {run_b} scores {b.get('world')}; compare like with like")
    rows, worse = compare_cards(a, b, tolerance)
    if as_json:
        _print_json({"a": str(run_a), "b": str(run_b), "tolerance": tolerance, "worse": worse, "metrics": rows})
    else:
        typer.echo(f"{'metric':<52}{'A':>12}{'B':>12}{'delta':>12}  verdict")
        for r in rows:
            def cell(v):
                return "—" if v is None else (str(v) if isinstance(v, bool) else f"{v:.4g}")
            typer.echo(f"{r['section'][:12] + ': ' + r['metric']:<52}"[:52]
                       + f"{cell(r['a']):>12}{cell(r['b']):>12}{cell(r.get('delta')):>12}  {r['verdict']}")
        typer.echo("B is WORSE than A beyond tolerance" if worse else "B is not worse than A")
    if worse:
        raise typer.Exit(1)


@app.command()
def serve(
    run: str = typer.Argument(..., help="run or model folder, or a reference (oracle, copy-last, motion-prior) with --world"),
    host: str = typer.Option("127.0.0.1", help="interface to bind (localhost by default)"),
    port: int = typer.Option(8765, help="TCP port"),
    token: Optional[str] = typer.Option(None, help="require this token (Authorization: Bearer ...)"),
    data: Optional[Path] = typer.Option(None, help="dataset whose spread scales uncertainty and divergence"),
    world: Optional[str] = typer.Option(None, help="world of a reference model"),
    max_sessions: int = typer.Option(64, help="sessions open at once"),
    open_browser: bool = typer.Option(False, "--open", help="open the play page in a browser"),
    batch: bool = typer.Option(True, help="step the WebSocket sessions whose steps arrive together as one batch "
                                          "(--no-batch: one model call per step, the benchmark's baseline)"),
):
    """Serve a model over HTTP and WebSocket: sessions for agents, and the play page at /."""
    _serve(run, host, port, token, data, world, max_sessions, open_browser, batch)


@app.command()
def play(
    run: str = typer.Argument(..., help="run or model folder"),
    port: int = typer.Option(8765, help="TCP port"),
    data: Optional[Path] = typer.Option(None, help="dataset whose spread scales uncertainty and divergence"),
    world: Optional[str] = typer.Option(None, help="world of a reference model"),
):
    """Serve a model on localhost and open the play page: push with arrows/WASD beside the true twin."""
    _serve(run, "127.0.0.1", port, None, data, world, 8, True, True)


def _serve(run, host, port, token, data, world, max_sessions, open_browser, batch) -> None:
    import threading
    import webbrowser

    import uvicorn

    from wmkit.interactive.server import SessionLimits, create_app
    from wmkit.models import load_model

    if not (0 < port < 65536):
        raise WmkitError(f"--port {port} must be between 1 and 65535")
    if max_sessions < 1:
        raise WmkitError(f"--max-sessions {max_sessions} must be at least 1")
    scale = None
    if data is not None:
        from wmkit.data import load_dataset

        ds = load_dataset(data)
        world = world or ds.world
        scale = ds.stats("all")["obs_std"].numpy()
    import torch

    torch.set_num_threads(1)  # batch-1 steps from many sessions: one thread each beats threads fighting over cores
    model = load_model(run, world=world)
    app_ = create_app(model, scale=scale, token=token, limits=SessionLimits(max_sessions=max_sessions),
                      batch_steps=batch)
    url = f"http://{host}:{port}/" + (f"?token={token}" if token else "")
    typer.echo(f"serving {model.family} model of {model.spec.world} at {url} (API docs: http://{host}:{port}/docs)")
    if open_browser:
        threading.Timer(1.0, lambda: webbrowser.open(url)).start()
    uvicorn.run(app_, host=host, port=port, log_level="warning")


@app.command()
def agent(
    world: str = typer.Option("Pendulum-v1", help="world to act in (see `wmkit worlds`)"),
    steps: int = typer.Option(3000, help="environment steps in all, the random episodes included"),
    planner: str = typer.Option("cem", help="cem, icem, mppi, or policy (an actor-critic trained in imagination)"),
    out: Path = typer.Option(Path("runs/agent"), help="folder for the data, the model and log.jsonl"),
    seed_episodes: int = typer.Option(1, help="episodes of the seed policy before the first model"),
    seed_policy: str = typer.Option("random", help="what acts in the seed episodes: random or noise (coloured)"),
    train_steps: int = typer.Option(1000, help="training steps of each retrain"),
    retrain_every: int = typer.Option(200, help="retrain after this many new environment steps"),
    preset: str = typer.Option("tiny", help="ensemble size: tiny, small or base"),
    horizon: int = typer.Option(15, help="planning horizon (steps)"),
    samples: int = typer.Option(200, help="action sequences per planner iteration"),
    iterations: int = typer.Option(4, help="planner iterations per control step"),
    max_episode_steps: Optional[int] = typer.Option(None, help="cap on an episode's length"),
    safety: Optional[str] = typer.Option(None, help="an unsafe event plans must avoid (e.g. cup_leaves_table)"),
    max_risk: float = typer.Option(0.1, help="largest share of imagined futures that may reach the unsafe event"),
    imagination_updates: int = typer.Option(500, help="--planner policy or --terminal-value: actor-critic updates "
                                                      "in each new model"),
    terminal_value: bool = typer.Option(False, help="the planner adds a critic's value (learned in imagination) "
                                                    "of where each plan ends"),
    value_from: str = typer.Option("imagination", help="--terminal-value: learn the value in imagination (inside "
                                                       "each model) or from the real transitions (data)"),
    critics: int = typer.Option(1, help="--planner policy or --terminal-value: critics trained side by side"),
    policy_prior: int = typer.Option(0, help="the planner also imagines this many plans proposed by an actor "
                                             "trained in imagination (TD-MPC2's policy samples)"),
    value_pessimism: float = typer.Option(0.0, help="--terminal-value with --critics 2 or more: the value is the "
                                                    "critics' mean less this times their spread"),
    known_task: bool = typer.Option(False, help="score plans by the world's own reward function of the observation "
                                                "(Reacher, InvertedPendulum, HalfCheetah) instead of the model's"),
    uncertainty_penalty: float = typer.Option(0.0, help="subtract this times the members' disagreement from each "
                                                        "imagined step's score: plans keep to where the data went"),
    eval_episodes: int = typer.Option(0, help="after the budget, episodes of the agent as it stands (no exploring, "
                                              "not trained on; rows with eval: true)"),
    seed: int = typer.Option(0),
):
    """The Dyna loop: act with a planner over a learned model, grow the data, retrain, repeat (log.jsonl)."""
    from wmkit.control.dyna import AgentConfig, run_agent

    cfg = AgentConfig(world=world, steps=steps, planner=planner, seed_episodes=seed_episodes, seed_policy=seed_policy,
                      train_steps=train_steps,
                      retrain_every=retrain_every,
                      model_preset=preset, horizon=horizon, samples=samples, iterations=iterations,
                      max_episode_steps=max_episode_steps, safety=safety, max_risk=max_risk,
                      imagination_updates=imagination_updates, terminal_value=terminal_value, value_from=value_from,
                      critics=critics, policy_prior=policy_prior,
                      value_pessimism=value_pessimism, known_task=known_task,
                      uncertainty_penalty=uncertainty_penalty, eval_episodes=eval_episodes, seed=seed)
    rows = run_agent(cfg, out, say=typer.echo)
    trained = [r for r in rows if not r["eval"]]
    typer.echo(f"log: {out / 'log.jsonl'} ({len(trained)} episodes, {trained[-1]['env_steps']} environment steps)")
    evals = [r["return"] for r in rows if r["eval"]]
    if evals:
        typer.echo(f"evaluation: mean return {sum(evals) / len(evals):.2f} over {len(evals)} episodes "
                   f"(the agent after {trained[-1]['env_steps']} steps)")


@app.command()
def demo(
    out: Path = typer.Option(Path("runs/demo"), help="folder for data, model and report"),
    episodes: int = typer.Option(DemoConfig.episodes, help="episodes to collect"),
    steps: int = typer.Option(DemoConfig.steps, help="training steps"),
    minutes: Optional[float] = typer.Option(DemoConfig.minutes, help="a cap on training minutes"),
):
    """Collect -> train -> eval on Tabletop-v0, and write a report with a plot and a filmstrip."""
    from wmkit.demo import run_demo

    res = run_demo(DemoConfig(out=out, episodes=episodes, steps=steps, minutes=minutes))
    typer.echo("")
    _print_accuracy(res["accuracy"], res.get("prior", {}).get("accuracy"))
    typer.echo(f"\nreport: {res['report']}  ({res['seconds']} s)")
    typer.echo(f"next: wmkit eval {out / 'model'} --data {out / 'data'} --suite quick   (the five-property scorecard)")


def main() -> None:
    try:
        app()
    except WmkitError as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
