"""The session server, over a real socket: HTTP, WebSocket, bad input, limits, the token, and the play page."""

import json
import shutil
import threading
import time

import httpx
import numpy as np
import pytest
import uvicorn
from websockets.sync.client import connect as ws_connect

from wmkit.interactive.server import SessionLimits, create_app
from wmkit.models import load_model, reference_model

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class LiveServer:
    """uvicorn on 127.0.0.1 and a free port, in a thread."""

    def __init__(self, app):
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        for _ in range(200):
            if self.server.started:
                break
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url, self.ws = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}"

    def stop(self):
        self.server.should_exit = True
        self.thread.join(timeout=5)


@pytest.fixture(scope="module")
def live(tabletop_run):
    server = LiveServer(create_app(load_model(tabletop_run), limits=SessionLimits(max_sessions=6)))
    yield server
    server.stop()


def _session(live, **body):
    r = httpx.post(f"{live.url}/api/sessions", json=body)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def test_http_session_lifecycle(live):
    info = httpx.get(f"{live.url}/api/info").json()
    assert info["world"] == "Tabletop-v0" and info["action_dim"] == 2 and "reward" in info["predicts"]
    sid = _session(live, seed=3)
    for _ in range(5):
        r = httpx.post(f"{live.url}/api/sessions/{sid}/step", json={"action": [1.0, 0.0]}).json()
    assert r["t"] == 5 and len(r["twin_obs"]) == 10 and r["latency_ms"] > 0
    fork = httpx.post(f"{live.url}/api/sessions/{sid}/fork").json()
    assert fork["t"] == 5 and fork["id"] != sid
    assert httpx.post(f"{live.url}/api/sessions/{sid}/rewind", json={"t": 2}).json()["t"] == 2
    moved = httpx.post(f"{live.url}/api/sessions/{sid}/intervene", json={"obs": {"2": 0.1}}).json()
    assert abs(moved["obs"][2] - 0.1) < 1e-9
    png = httpx.get(f"{live.url}/api/sessions/{sid}/frame", params={"which": "twin", "size": 64})
    assert png.headers["content-type"] == "image/png" and png.content[:4] == b"\x89PNG"
    jpg = httpx.get(f"{live.url}/api/sessions/{sid}/frame", params={"format": "jpeg", "size": 64})
    assert jpg.content[:2] == b"\xff\xd8"
    for s in (sid, fork["id"]):
        assert httpx.delete(f"{live.url}/api/sessions/{s}").status_code == 204
    assert httpx.post(f"{live.url}/api/sessions/{sid}/step", json={"action": [0, 0]}).status_code == 404


@pytest.mark.parametrize("body, needle", [
    ({"action": [1.0]}, "shape"),
    ({"action": [1.0, "x"]}, "action"),
    ({"action": [1.0, 0.0], "extra": 1}, "extra"),
    ({}, "action"),
])
def test_bad_steps_get_4xx_and_the_server_goes_on(live, body, needle):
    sid = _session(live)
    r = httpx.post(f"{live.url}/api/sessions/{sid}/step", json=body)
    assert 400 <= r.status_code < 500 and needle in r.text, r.text
    r = httpx.post(f"{live.url}/api/sessions/{sid}/step", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert httpx.post(f"{live.url}/api/sessions/{sid}/step", json={"action": [0.0, 0.0]}).status_code == 200
    httpx.delete(f"{live.url}/api/sessions/{sid}")


def test_nan_oversized_unknown_and_too_many(live):
    sid = _session(live)
    r = httpx.post(f"{live.url}/api/sessions/{sid}/step", content=b'{"action": [NaN, 0]}',
                   headers={"content-type": "application/json"})
    assert r.status_code == 422 and "NaN" in r.text
    big = httpx.post(f"{live.url}/api/sessions/{sid}/step", content=b"[" + b"0," * 40000 + b"0]",
                     headers={"content-type": "application/json"})
    assert big.status_code == 413 and "exceeds the limit" in big.text
    assert httpx.post(f"{live.url}/api/sessions/nope/step", json={"action": [0, 0]}).status_code == 404
    assert httpx.post(f"{live.url}/api/sessions", json={"physics": {"cup_mass": 99}}).status_code == 422
    opened = [_session(live) for _ in range(5)]  # 6 with `sid`: the limit
    r = httpx.post(f"{live.url}/api/sessions", json={})
    assert r.status_code == 429 and "limit" in r.text
    for s in [sid, *opened]:
        httpx.delete(f"{live.url}/api/sessions/{s}")


def test_websocket_steps_and_error_frames(live):
    sid = _session(live, seed=1)
    with ws_connect(f"{live.ws}/ws/sessions/{sid}") as ws:
        for bad, needle in [("{oops", "malformed JSON"), ('{"op": "jump"}', "unknown op"),
                            ('{"op": "step", "action": [0]}', "shape"), ('[1, 2]', "'op'"),
                            ('{"op": "step", "action": [1e999, 0]}', "NaN or inf")]:
            ws.send(bad)
            reply = json.loads(ws.recv())
            assert needle in reply["error"], (bad, reply)
        xs = []
        for _ in range(10):
            ws.send(json.dumps({"op": "step", "action": [1.0, 0.0]}))
            reply = json.loads(ws.recv())
            xs.append(reply["obs"][0])
        assert reply["t"] == 10 and xs[-1] > xs[0]  # pushed right, the imagined pusher went right
        ws.send(json.dumps({"op": "rewind", "t": 4}))
        assert json.loads(ws.recv())["t"] == 4
    with ws_connect(f"{live.ws}/ws/sessions/unknown") as ws:
        ws.send(json.dumps({"op": "step", "action": [0, 0]}))
        assert json.loads(ws.recv())["status"] == 404
    httpx.delete(f"{live.url}/api/sessions/{sid}")


def test_concurrent_websocket_steps_equal_stepping_alone(live):
    """Steps from several sockets at once are batched into one model step; each reply is still its own."""
    actions = np.random.default_rng(0).uniform(-1, 1, (15, 2)).tolist()
    ref = _session(live, seed=4)
    alone = [httpx.post(f"{live.url}/api/sessions/{ref}/step", json={"action": a}).json()["obs"] for a in actions]
    sids = [_session(live, seed=4) for _ in range(4)]
    got, start = {}, threading.Barrier(len(sids))

    def client(sid):
        with ws_connect(f"{live.ws}/ws/sessions/{sid}") as ws:
            start.wait()
            got[sid] = []
            for a in actions:
                ws.send(json.dumps({"op": "step", "action": a}))
                got[sid].append(json.loads(ws.recv()))

    threads = [threading.Thread(target=client, args=(sid,)) for sid in sids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    for sid in sids:
        assert [r["t"] for r in got[sid]] == list(range(1, 16))
        np.testing.assert_allclose([r["obs"] for r in got[sid]], alone, atol=1e-5)
    for sid in [ref, *sids]:
        httpx.delete(f"{live.url}/api/sessions/{sid}")


def test_a_client_that_vanishes_mid_step_leaks_nothing(live):
    sid = _session(live)
    with ws_connect(f"{live.ws}/ws/sessions/{sid}") as ws:
        ws.send(json.dumps({"op": "step", "action": [0.5, 0.5]}))  # and gone before reading the reply
    time.sleep(0.2)
    r = httpx.post(f"{live.url}/api/sessions/{sid}/step", json={"action": [0, 0]})
    assert r.status_code == 200 and r.json()["t"] == 2
    httpx.delete(f"{live.url}/api/sessions/{sid}")


def test_token_is_required_when_set():
    server = LiveServer(create_app(reference_model("copy-last", "Tabletop-v0"), token="s3cret"))
    try:
        assert httpx.get(f"{server.url}/api/info").status_code == 401
        ok = httpx.get(f"{server.url}/api/info", headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200
        assert httpx.get(f"{server.url}/").status_code == 200  # the page itself; it passes ?token= on
    finally:
        server.stop()


def test_the_api_survives_schema_fuzzing(live):
    """Requests generated from the server's own OpenAPI schema: never a 5xx."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings

    schema = schemathesis.openapi.from_url(f"{live.url}/openapi.json")
    failures = []
    for result in schema.get_all_operations():
        op = result.ok()

        @settings(max_examples=15, deadline=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(case=op.as_strategy())
        def run(case):
            response = case.call(base_url=live.url)
            if response.status_code >= 500:
                failures.append((case.method, case.formatted_path, response.status_code, response.text[:200]))

        run()
    for sid in list(live.server.config.app.state.sessions):
        httpx.delete(f"{live.url}/api/sessions/{sid}")
    assert not failures, failures[:3]


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt install chromium); play page not opened")
def test_play_page_in_chromium(live, tmp_path):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 900, "height": 720})
        page.goto(live.url + "/")
        page.wait_for_function("Number(document.body.dataset.t || -1) >= 0 && document.body.dataset.obs")
        start = json.loads(page.evaluate("document.body.dataset.obs"))
        first_src = page.get_attribute("#imagined", "src")
        sign = 1.0 if start[0] < 0 else -1.0  # push toward the far side, away from the rail it starts near
        key = "ArrowRight" if sign > 0 else "ArrowLeft"
        page.keyboard.down(key)
        page.wait_for_function("Number(document.body.dataset.t) >= 12", timeout=20000)
        page.keyboard.up(key)
        obs = json.loads(page.evaluate("document.body.dataset.obs"))
        twin = json.loads(page.evaluate("document.body.dataset.twinObs"))
        hud = {k: page.inner_text(f"#{k}") for k in ("t", "latency", "fps", "divergence")}
        src, loaded = page.wait_for_function(  # a frame that has loaded (the page keeps stepping meanwhile)
            "(() => { const i = document.getElementById('imagined');"
            " return i.complete && i.naturalWidth > 0 ? [i.getAttribute('src'), i.naturalWidth] : false; })()"
        ).json_value()
        page.screenshot(path=str(tmp_path / "play.png"))
        video = None
        for seconds in (2, 4, 8):  # record both views, then download; a loaded machine may encode nothing at first
            page.click("#record")
            page.wait_for_timeout(seconds * 1000)
            try:
                with page.expect_download(timeout=10_000) as download:
                    page.click("#record")
            except PlaywrightTimeout:  # the page said so instead of downloading an empty file
                assert "nothing was encoded" in page.inner_text("#record")
                continue
            video = tmp_path / download.value.suggested_filename
            download.value.save_as(video)
            break
        browser.close()
    assert video is not None, "three recordings (2, 4 and 8 s) encoded nothing"
    assert sign * (obs[0] - start[0]) > 0.02, (start[0], obs[0])  # the imagined pusher moved the way it was pushed
    assert sign * (twin[0] - start[0]) > 0.02  # the twin took the same pushes, step for step
    assert int(hud["t"]) >= 12 and float(hud["latency"]) > 0 and float(hud["fps"]) > 0, hud
    assert src != first_src and loaded > 0
    assert (tmp_path / "play.png").stat().st_size > 10_000
    assert video.suffix in (".mp4", ".webm") and video.stat().st_size > 1_000, video
    np.isfinite(float(hud["divergence"]))


def test_client_is_a_gymnasium_env(live):
    import gymnasium as gym

    import wmkit.client

    open_before = len(live.server.config.app.state.sessions)
    env = wmkit.client.connect(live.url, max_episode_steps=5)
    assert isinstance(env, gym.Env) and env.action_space.shape == (2,)
    obs, info = env.reset(seed=4)
    assert obs.shape == (10,) and len(info["twin_obs"]) == 10
    for _ in range(5):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert truncated and np.isfinite(reward) and info["latency_ms"] > 0
    env.reset(seed=5)  # a fresh session; the previous one is closed on the server
    assert len(live.server.config.app.state.sessions) == open_before + 1
    with pytest.raises(wmkit.WmkitError, match="refused the step"):
        env.step([np.nan, 0.0])
    env.close()
    assert len(live.server.config.app.state.sessions) == open_before
    with pytest.raises(wmkit.WmkitError, match="no wmkit server"):
        wmkit.client.connect("http://127.0.0.1:9")
