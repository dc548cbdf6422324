"""Acting with a model: planners (CEM, iCEM, MPPI) beat random with the true simulator, plan toward goals
and weigh uncertainty; the safety filter; DreamEnv; the Dyna agent learning Pendulum; refusals."""

import json

import numpy as np
import pytest
import torch

import wmkit
from wmkit.control import CEMConfig, CEMPlanner, Objective, make_planner
from wmkit.control.icem import coloured_noise
from wmkit.data.policies import make_policy
from wmkit.models import ModelSpec, Prediction, State, WorldModel, reference_model

BUDGET = {"horizon": 8, "samples": 24, "iterations": 2}


def _episode(env, start, act, steps=30):
    env.set_state(start)
    obs, total = None, 0.0
    for _ in range(steps):
        obs, reward, terminated, _, _ = env.step(act(env).astype(np.float32))
        total += reward
        if terminated:
            break
    return total


def _planned(oracle, planner):
    def act(e):
        o = torch.tensor(e._observe(), dtype=torch.float32)[None, None]
        state = oracle.observe(o, torch.zeros(1, 0, 2), sim_state=torch.from_numpy(e.get_state())[None])
        return planner.plan(state).numpy()
    return act


@pytest.mark.parametrize("name, extra", [("cem", {"elites": 4}), ("icem", {"elites": 4}), ("mppi", {})])
def test_planners_with_the_true_simulator_beat_random_pushes(name, extra):
    oracle = reference_model("oracle", "Tabletop-v0")
    env = wmkit.make("Tabletop-v0")
    for seed in (0, 1):
        env.reset(seed=seed)
        start = env.get_state()
        planner = make_planner(name, oracle, **BUDGET, **extra, seed=seed)
        policy = make_policy("noise", env.action_space, np.random.default_rng(seed))
        policy.reset()
        planned, random = _episode(env, start, _planned(oracle, planner)), _episode(env, start, lambda e: policy(None))
        assert planned > random + 0.5, (name, seed, planned, random)


def test_a_goal_state_is_reached_without_any_reward():
    oracle = reference_model("oracle", "Tabletop-v0")
    env = wmkit.make("Tabletop-v0")
    env.reset(seed=3)
    goal = (-0.15, 0.1)  # where the pusher should go
    planner = CEMPlanner(oracle, CEMConfig(**BUDGET, elites=4), Objective(reward=0, goal=goal, goal_dims=(0, 1)))
    _episode(env, env.get_state(), _planned(oracle, planner), steps=25)
    assert np.linalg.norm(env.data.qpos[:2] - goal) < 0.03, env.data.qpos[:2]


def test_the_uncertainty_penalty_prefers_futures_the_model_knows(tabletop_run):
    model = wmkit.load_model(tabletop_run)
    planner = make_planner("mppi", model, Objective(uncertainty_penalty=1.0))
    pred = Prediction(obs=torch.zeros(2, 3, 10), reward=torch.zeros(2, 3), obs_std=torch.tensor([0.1, 0.5])[:, None, None]
                      .expand(2, 3, 10))
    score = planner.score(pred)
    assert score[0] > score[1] and torch.isclose(score[0] - score[1], torch.tensor(3 * 0.4))


def test_coloured_noise_is_smoother_the_higher_beta():
    g = torch.Generator().manual_seed(0)
    roughness = [coloured_noise(256, 16, 2, beta, g).diff(dim=1).abs().mean().item() for beta in (0.0, 1.0, 2.0)]
    assert roughness[0] > roughness[1] > roughness[2]
    assert abs(coloured_noise(512, 16, 2, 2.0, g).std().item() - 1) < 1e-3


def test_planners_refuse_what_they_cannot_use():
    with pytest.raises(wmkit.WmkitError, match="predicts no reward"):
        CEMPlanner(reference_model("copy-last", "Tabletop-v0"))
    with pytest.raises(wmkit.WmkitError, match="elites=9 exceeds samples=8"):
        CEMConfig(samples=8, elites=9)
    with pytest.raises(wmkit.WmkitError, match="horizon=0"):
        CEMConfig(horizon=0)
    oracle = reference_model("oracle", "Tabletop-v0")
    with pytest.raises(wmkit.WmkitError, match="goal has 3 values for dimensions \\[0, 1\\]"):
        make_planner("icem", oracle, Objective(goal=(0.0, 0.0, 0.0), goal_dims=(0, 1)))
    with pytest.raises(wmkit.WmkitError, match="nothing to plan for"):
        Objective(reward=0)
    with pytest.raises(wmkit.WmkitError, match="predicts no uncertainty"):
        make_planner("mppi", oracle, Objective(uncertainty_penalty=1.0))
    with pytest.raises(wmkit.WmkitError, match="unknown planner 'ilqr'"):
        make_planner("ilqr", oracle)
    with pytest.raises(wmkit.WmkitError, match="mppi config has no field elites"):
        make_planner("mppi", oracle, elites=3)
    with pytest.raises(wmkit.WmkitError, match="temperature"):
        make_planner("mppi", oracle, temperature=0)
    planner = CEMPlanner(oracle)
    state = planner.model.observe(torch.zeros(2, 1, 10), torch.zeros(2, 0, 2))
    with pytest.raises(wmkit.WmkitError, match="batch 1"):
        planner.plan(state)


def test_dream_env_is_a_gymnasium_env_inside_the_model(tabletop_run, tabletop_data):
    from gymnasium.utils.env_checker import check_env

    model = wmkit.load_model(tabletop_run)
    env = wmkit.DreamEnv(model, wmkit.load_dataset(tabletop_data), max_episode_steps=20)
    check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    first = obs.copy()
    steps, truncated, terminated = 0, False, False
    while not (truncated or terminated):
        obs, reward, terminated, truncated, _ = env.step(np.array([1.0, 0.0], dtype=np.float32))
        steps += 1
    assert steps <= 20 and (truncated == (steps == 20))
    assert obs[0] > first[0]  # pushed right in the dream, the pusher went right
    again, _ = env.reset(seed=0)
    np.testing.assert_array_equal(again, first)  # seeded starts
    world_start, _ = wmkit.DreamEnv(model).reset(seed=1)  # no dataset: the true world's reset
    assert world_start.shape == (10,)


def test_dream_env_refuses_what_it_cannot_use(tabletop_run):
    with pytest.raises(wmkit.WmkitError, match="needs a model with a reward head"):
        wmkit.DreamEnv(reference_model("copy-last", "Tabletop-v0"))
    env = wmkit.DreamEnv(wmkit.load_model(tabletop_run))
    with pytest.raises(wmkit.WmkitError, match="reset"):
        env.step(np.zeros(2, dtype=np.float32))
    env.reset(seed=0)
    with pytest.raises(wmkit.WmkitError, match="2 finite numbers"):
        env.step(np.array([np.nan, 0.0], dtype=np.float32))
    with pytest.raises(wmkit.WmkitError, match="max_episode_steps"):
        wmkit.DreamEnv(wmkit.load_model(tabletop_run), max_episode_steps=0)


def _near_the_edge(env):
    env.reset(seed=0)
    env.state_from_obs(np.array([0.06, 0.0, 0.17, 0.0, 0.47] + [0.0] * 5))  # pusher behind a cup near the edge
    return env.get_state()


@pytest.mark.parametrize("filtered", [False, True])
def test_the_safety_filter_keeps_the_cup_on_the_table(filtered):
    from wmkit.control import SafetyFilter

    oracle = reference_model("oracle", "Tabletop-v0")
    env = wmkit.make("Tabletop-v0")
    start = _near_the_edge(env)
    off_the_edge = Objective(reward=0, goal=(0.45,), goal_dims=(2,))  # a goal that lies past the edge
    safety = SafetyFilter(oracle, "cup_leaves_table", max_risk=0.0) if filtered else None
    planner = CEMPlanner(oracle, CEMConfig(**BUDGET, elites=4), off_the_edge, safety)
    env.set_state(start)
    left = False
    for _ in range(20):
        env.step(_planned(oracle, planner)(env).astype(np.float32))
        left |= bool(np.any(np.abs(env.data.qpos[2:4]) > 0.25))
    assert left != filtered, (filtered, env.data.qpos[2:5])
    if filtered:
        assert env.data.qpos[2] > 0.2  # it still went as far as it safely could


def test_safety_risk_counts_ensemble_members(tabletop_run):
    from wmkit.control import SafetyFilter

    model = wmkit.load_model(tabletop_run)
    safety = SafetyFilter(model, "cup_leaves_table", max_risk=0.2)
    obs = torch.tensor([[0.0, 0.0, 0.0, 0.0, 0.47] + [0.0] * 5, [0.0, 0.2, 0.0, 0.32, 0.47] + [0.0] * 5])
    verdict = safety.check(model.observe(obs[:, None], torch.zeros(2, 0, 2)), torch.zeros(2, 5, 2))
    E = model.config.members
    assert torch.allclose(verdict.risk * E, (verdict.risk * E).round())  # a share of the members
    assert verdict.risk[1] == 1 and not verdict.safe[1]  # already past the edge: every member sees it
    assert verdict.risk[0] < verdict.risk[1]


def test_safety_filter_refuses_what_it_cannot_check(tabletop_run):
    from wmkit.control import SafetyFilter

    model = wmkit.load_model(tabletop_run)
    with pytest.raises(wmkit.WmkitError, match="no unsafe event 'cup_breaks'.*known: cup_leaves_table"):
        SafetyFilter(model, "cup_breaks")
    with pytest.raises(wmkit.WmkitError, match="known: none"):
        SafetyFilter(reference_model("oracle", "Pendulum-v1"), "falls")
    with pytest.raises(wmkit.WmkitError, match="max_risk"):
        SafetyFilter(model, "cup_leaves_table", max_risk=1.5)
    with pytest.raises(wmkit.WmkitError, match="planner's own model"):
        make_planner("cem", reference_model("oracle", "Tabletop-v0"), safety=SafetyFilter(model, "cup_leaves_table"))


def test_the_dyna_agent_learns_pendulum_from_a_few_hundred_steps(tmp_path):
    from wmkit.control.dyna import AgentConfig, run_agent

    rows = run_agent(AgentConfig(world="Pendulum-v1", steps=600, train_steps=800, samples=128, seed=0,
                                 eval_episodes=1), tmp_path / "a", say=lambda *_: None)
    assert [r["env_steps"] for r in rows] == [200, 400, 600, 600]  # an evaluation episode adds no experience
    assert [r["acted"] for r in rows] == ["random", "cem", "cem", "cem"]
    assert [r["eval"] for r in rows] == [False, False, False, True]
    planned = np.mean([r["return"] for r in rows[1:3]])
    assert planned > rows[0]["return"] + 400, rows  # swinging up vs flailing (random ~ -1000)
    assert rows[3]["return"] > rows[0]["return"] + 400, rows  # the agent as it stands swings up too
    trained = wmkit.load_dataset(tmp_path / "a" / "data", val_fraction=0.0).episodes
    evaluated = wmkit.load_dataset(tmp_path / "a" / "eval", val_fraction=0.0).episodes
    assert len(trained) == 3 and len(evaluated) == 1  # kept apart: no model ever trains on an evaluation
    assert all(not np.allclose(evaluated[0].obs[0], ep.obs[0]) for ep in trained)  # from another start
    logged = [json.loads(line) for line in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    assert logged == rows


def test_the_agent_can_start_from_coloured_noise(tmp_path):
    from wmkit.control.dyna import AgentConfig, run_agent

    rows = run_agent(AgentConfig(world="Tabletop-v0", steps=500, seed_episodes=2, seed_policy="noise", train_steps=20,
                                 horizon=3, samples=8, iterations=1), tmp_path / "a", say=lambda *_: None)
    assert [r["acted"] for r in rows] == ["noise", "noise", "cem"]
    episodes = wmkit.load_dataset(tmp_path / "a" / "data", val_fraction=0.0).episodes
    for ep in episodes[:2]:  # coloured noise: each action close to the one before (uniform random: about 0)
        a = np.asarray(ep.actions)
        assert np.corrcoef(a[:-1, 0], a[1:, 0])[0, 1] > 0.5


def test_wmkit_agent_on_the_command_line_and_its_refusals(tmp_path):
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "wmkit.cli", "agent", "--world", "Pendulum-v1", "--steps", "300", "--train-steps",
           "100", "--samples", "32", "--iterations", "2", "--max-episode-steps", "100", "--eval-episodes", "2",
           "--out", str(tmp_path / "cli")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "episode   2" in done.stdout and "(3 episodes, 300 environment steps)" in done.stdout
    assert "over 2 episodes (the agent after 300 steps)" in done.stdout, done.stdout
    early = subprocess.run([*cmd[:-1], str(tmp_path / "early"), "--steps", "50"], capture_output=True, text=True,
                           timeout=120)  # the random episode spends the budget: there is no agent to evaluate
    assert early.returncode == 2 and "no model was trained to evaluate" in early.stderr, early.stderr
    for args, needle in [(["--world", "Nowhere-v0"], "unknown world"), (["--planner", "ilqr"], "planner='ilqr'"),
                         (["--seed-policy", "zigzag"], "seed_policy='zigzag'"),
                         (["--eval-episodes", "-1"], "eval_episodes=-1"),
                         (["--uncertainty-penalty", "-1"], "uncertainty_penalty=-1"),
                         (["--critics", "3"], "critics=3 trains an actor-critic's critics"),
                         (["--planner", "policy", "--policy-prior", "8"], "policy_prior=8 has the actor propose"),
                         (["--terminal-value", "--value-pessimism", "1"], "use it with terminal_value=True and critics"),
                         (["--value-from", "data"], "value_from='data' says where a planner's terminal value"),
                         (["--terminal-value", "--value-from", "model"], "value_from='model'; choose imagination"),
                         (["--world", "Pendulum-v1", "--safety", "falls"], "no unsafe event 'falls'"),
                         (["--out", str(tmp_path / "cli")], "not empty")]:
        out = tmp_path / "fresh" if "--out" not in args else None
        bad = subprocess.run([sys.executable, "-m", "wmkit.cli", "agent", *args] + (["--out", str(out)] if out else []),
                             capture_output=True, text=True, timeout=120)
        assert bad.returncode == 2 and needle in bad.stderr, (args, bad.stderr)
        assert out is None or not out.exists()  # refused before anything was written


class _DotModel(WorldModel):
    """A planted pixel model: a dot at p in [-1, 1]^2 moves by 0.2 x the action; frames show the dot as
    a blob. It knows its dynamics exactly, so only the goal-frame objective decides what a planner does."""

    family = "dot"

    def __init__(self):
        super().__init__(ModelSpec(world="dot", obs_dim=2, action_dim=2, dt=0.1, latent_dim=2, action_low=(-1, -1),
                                   action_high=(1, 1), decodes=("frame",), frame_size=16, frame_camera="top"))

    @staticmethod
    def picture(p: torch.Tensor) -> torch.Tensor:
        grid = torch.linspace(-2, 2, 16)  # the frame shows the whole blob wherever the dot is
        yy, xx = torch.meshgrid(grid, grid, indexing="ij")
        d2 = (xx - p[..., 0, None, None]) ** 2 + (yy - p[..., 1, None, None]) ** 2
        return torch.exp(-d2 / 0.5)[..., None].expand(*d2.shape, 3)  # wide: frames of far-apart dots still overlap

    def observe(self, obs, actions, *, frames=None, physics=None, sim_state=None):
        return State(p=self.check_context(obs, actions)[0][:, -1])

    def step(self, state, action):
        p = (state["p"] + 0.2 * self.check_actions(action, ndim=2)).clamp(-1, 1)
        return State(p=p), Prediction(obs=p, frame=self.picture(p))


def test_a_goal_frame_steers_a_pixel_model_and_bad_goal_frames_are_refused(tabletop_run):
    model, target = _DotModel(), torch.tensor([0.6, 0.6])
    goal = (_DotModel.picture(target) * 255).to(torch.uint8)  # an image of where the dot should be
    planner = make_planner("cem", model, Objective(reward=0, goal_frame=goal), horizon=6, samples=64, iterations=3)
    p = torch.tensor([[-0.6, -0.6]])
    for _ in range(12):
        action = planner.plan(model.observe(p[:, None], torch.zeros(1, 0, 2)))
        p = (p + 0.2 * action).clamp(-1, 1)
    assert (p[0] - target).norm() < 0.15, p  # it went there, from pixels alone
    with pytest.raises(wmkit.WmkitError, match=r"goal_frame has shape \(8, 8, 3\); this model decodes \[16, 16, 3\]"):
        make_planner("cem", model, Objective(reward=0, goal_frame=np.zeros((8, 8, 3), np.uint8)))
    with pytest.raises(wmkit.WmkitError, match=r"in \[0, 1\]"):
        make_planner("cem", model, Objective(reward=0, goal_frame=np.full((16, 16, 3), 2.0)))
    with pytest.raises(wmkit.WmkitError, match="does not decode frames"):
        make_planner("cem", wmkit.load_model(tabletop_run), Objective(goal_frame=np.zeros((16, 16, 3), np.uint8)))


def test_one_particle_per_candidate_scores_with_one_member_each(tabletop_run):
    """particles='one': candidate i is scored on member i mod E's future alone; refused where it cannot work."""
    model = wmkit.load_model(tabletop_run)
    E = model.config.members
    planner = make_planner("cem", model, **BUDGET, elites=4, particles="one")
    obs = torch.tensor([[[0.1, 0.0, 0.05, 0.0, 0.47, 0.0, 0.0, 0.0, 0.0, 0.0]]])
    state = model.observe(obs, torch.zeros(1, 0, 2))
    actions = torch.rand(6, 8, 2, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        score = planner.imagine(state.repeat(6), actions)
        for i in range(6):  # the same candidate through member i mod E only, built by hand
            alone = State(obs=state["obs"][:, i % E:i % E + 1], member=torch.tensor([i % E]))
            assert torch.isclose(score[i], planner.score(model.rollout(alone, actions[i:i + 1]))[0], atol=1e-5)
        everyone = make_planner("cem", model, **BUDGET, elites=4).imagine(state.repeat(6), actions)
    assert not torch.allclose(score, everyone)  # the all-member score averages the members' futures
    assert planner.plan(state).shape == (2,)
    oracle = reference_model("oracle", "Tabletop-v0")
    with pytest.raises(wmkit.WmkitError, match="needs a model with members"):
        make_planner("mppi", oracle, particles="one")
    with pytest.raises(wmkit.WmkitError, match="no disagreement"):
        make_planner("icem", model, Objective(uncertainty_penalty=1.0), particles="one")
    with pytest.raises(wmkit.WmkitError, match="particles='all'"):
        make_planner("cem", model, particles="all")


class _LineModel(WorldModel):
    """A planted model: a point on a line moves by 0.1 x the action, every reward is 0 and nothing ends,
    so only a terminal value can tell plans apart."""

    family = "line"

    def __init__(self):
        super().__init__(ModelSpec(world="line", obs_dim=1, action_dim=1, dt=0.1, latent_dim=1, action_low=(-1,),
                                   action_high=(1,), decodes=("state",), predicts=("reward", "termination")))

    def observe(self, obs, actions, *, frames=None, physics=None, sim_state=None):
        return State(x=self.check_context(obs, actions)[0][:, -1])

    def step(self, state, action):
        x = state["x"] + 0.1 * self.check_actions(action, ndim=2)
        return State(x=x), Prediction(obs=x, reward=torch.zeros(len(x)), terminated=torch.zeros(len(x)))


def test_a_terminal_value_scores_where_plans_end_and_bad_values_are_refused():
    model = _LineModel()
    start = model.observe(torch.zeros(1, 1, 1), torch.zeros(1, 0, 1))
    for sign in (1.0, -1.0):  # the value prefers ending right, then left: the plan follows it
        objective = Objective(terminal_value=lambda obs, s=sign: s * obs[:, 0], value_discount=0.9)
        planner = make_planner("cem", model, objective, horizon=4, samples=64, iterations=3, seed=0)
        assert sign * planner.plan(start).item() > 0.5
        actions = torch.rand(5, 4, 1, generator=torch.Generator().manual_seed(1)) * 2 - 1
        pred = model.rollout(start.repeat(5), actions)
        expected = 0.9 ** 4 * sign * (0.1 * actions.sum((1, 2)))  # discounted value of the last position
        assert torch.allclose(planner.score(pred), expected, atol=1e-6)
    with pytest.raises(wmkit.WmkitError, match="terminal_value=3 must be a function"):
        Objective(terminal_value=3)
    with pytest.raises(wmkit.WmkitError, match=r"value_discount=1.5 must be in \(0, 1\]"):
        Objective(terminal_value=lambda o: o[:, 0], value_discount=1.5)
    wrong = make_planner("cem", model, Objective(terminal_value=lambda o: o), horizon=4, samples=8, iterations=1)
    with pytest.raises(wmkit.WmkitError, match=r"returned shape \(8, 1\) for 8 observations"):
        wrong.plan(start)
    with pytest.raises(wmkit.WmkitError, match="does not decode them"):
        make_planner("cem", _DotModel(), Objective(reward=0, goal_frame=np.zeros((16, 16, 3), np.uint8),
                                                    terminal_value=lambda o: o[:, 0]))


def test_a_prior_s_proposals_compete_with_the_search_and_bad_priors_are_refused():
    """The value is a spike no blind sample of 8 finds (x = 0.37 +- 0.005 after 4 steps): a prior that proposes
    the one sequence that gets there wins every planner's search; without it, none finds it."""
    model = _LineModel()
    start = model.observe(torch.zeros(1, 1, 1), torch.zeros(1, 0, 1))
    spike = Objective(terminal_value=lambda obs: 10.0 * ((obs[:, 0] - 0.37).abs() < 0.005).float())
    seen = []

    def prior(state, obs, horizon):
        seen.append((state["x"].clone(), obs.clone()))
        return torch.full((2, horizon, 1), 0.925)  # 4 x 0.1 x 0.925 = 0.37

    for name in ("cem", "icem", "mppi"):
        budget = {"horizon": 4, "samples": 16, "iterations": 1, "seed": 0}
        if name != "mppi":
            budget["elites"] = 2
        blind = make_planner(name, model, spike, **budget)
        assert abs(blind.plan(start).item() - 0.925) > 0.05, name
        guided = make_planner(name, model, spike, prior=prior, **budget)
        assert abs(guided.plan(start, torch.tensor([0.25])).item() - 0.925) < 0.05, name
        assert seen[-1][1].tolist() == [[0.25]]  # the prior acted on the observation it was given
        with pytest.raises(wmkit.WmkitError, match=r"call plan\(state, obs\)"):
            guided.plan(start)
    with pytest.raises(wmkit.WmkitError, match="prior=3 must be a function"):
        make_planner("cem", model, spike, prior=3)
    short = make_planner("cem", model, spike, prior=lambda s, o, h: torch.zeros(2, h - 1, 1), horizon=4)
    with pytest.raises(wmkit.WmkitError, match=r"returned \(2, 3, 1\); it must return action sequences \[K, 4, 1\]"):
        short.plan(start, torch.zeros(1))
    with pytest.raises(wmkit.WmkitError, match="obs has shape"):
        make_planner("icem", model, spike, prior=prior).plan(start, torch.zeros(3))


def test_a_task_function_scores_each_members_future_instead_of_the_heads(tabletop_run):
    model = wmkit.load_model(tabletop_run)
    obs = torch.tensor([[[0.1, 0.0, 0.05, 0.0, 0.47, 0.0, 0.0, 0.0, 0.0, 0.0]]])
    state = model.observe(obs, torch.zeros(1, 0, 2)).repeat(4)
    actions = torch.rand(4, 5, 2, generator=torch.Generator().manual_seed(0)) * 2 - 1

    def pusher_x(act, nxt):  # reward: the pusher's x; the episode ends once it passes x = 0.12
        return nxt[..., 0], (nxt[..., 0] > 0.12).float()

    planner = make_planner("cem", model, Objective(task=pusher_x), **BUDGET, elites=4)
    with torch.no_grad():
        pred = model.rollout(state, actions)
        score = planner.score(pred, actions)
    members = pred.members[..., 0]  # [N, H, M]: each member's pusher x, scored apart and then averaged
    ended = (members > 0.12).float().mean(-1)
    alive = torch.cat([torch.ones(4, 1), torch.cumprod(1 - ended, 1)[:, :-1]], 1)
    assert torch.allclose(score, (members.mean(-1) * alive).sum(1), atol=1e-5)
    assert not torch.allclose(score, make_planner("cem", model, **BUDGET, elites=4).score(pred))  # not the heads
    with pytest.raises(wmkit.WmkitError, match="must return \\(reward, terminated\\)"):
        make_planner("cem", model, Objective(task=lambda a, o: o[..., 0]), **BUDGET).score(pred, actions)
    with pytest.raises(wmkit.WmkitError, match="call score\\(pred, actions\\)"):
        planner.score(pred)
    with pytest.raises(wmkit.WmkitError, match="task='reach' must be a function"):
        Objective(task="reach")
    from wmkit.control.dyna import AgentConfig, run_agent

    with pytest.raises(wmkit.WmkitError, match="Pendulum-v1 does not state its reward.*InvertedPendulum-v5, Reacher-v5"):
        run_agent(AgentConfig(world="Pendulum-v1", known_task=True), tabletop_run.parent / "never")
    assert not (tabletop_run.parent / "never").exists()
