"""The session server: FastAPI over HTTP and WebSocket, for agents and for the play page.

`create_app(model)` serves one trained model. Each client creates sessions (`Session`: the model
beside its true twin) and steps, forks, rewinds, intervenes on and closes them, over JSON requests
(every request and reply is in the OpenAPI schema at /openapi.json) or over a WebSocket
(`/ws/sessions/{id}`, one JSON message per operation, errors as `{"error": ...}` frames). Frames
come as PNG or JPEG. Bad input gets a 4xx with a message naming the value; the server keeps serving
everyone else. Limits: sessions at once, request size, idle time; an optional token.

`wmkit serve RUN` runs it on 127.0.0.1 by default (localhost only).
"""

from __future__ import annotations

import asyncio
import io
import json
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import numpy as np
from fastapi import FastAPI, HTTPException, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from wmkit.errors import WmkitError
from wmkit.interactive.session import Session, step_together


class SessionLimits(BaseModel):
    max_sessions: int = 64
    idle_timeout_s: float = 600.0
    max_request_bytes: int = 64 * 1024
    max_history: int = 1024


class CreateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="seed of the world's reset")
    physics: dict[str, float] | None = Field(None, description="physics values of the twin (see `wmkit worlds`)")
    twin: bool = Field(True, description="step the true simulator beside the model")


class StepRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: list[float] = Field(..., description="one action, the world's action size", max_length=64)


class RewindRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    t: int = Field(..., ge=0, description="a step still in the session's history")


class InterveneRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    obs: dict[int, float] | None = Field(None, description="observation dimension -> value, in both worlds")
    physics: dict[str, float] | None = Field(None, description="physics values to set in the twin")


class SessionInfo(BaseModel):
    id: str
    t: int
    obs: list[float]
    twin_obs: list[float] | None


class StepReply(BaseModel):
    t: int
    obs: list[float]
    reward: float | None
    terminated: float | None
    uncertainty: float | None
    twin_obs: list[float] | None
    twin_reward: float | None
    divergence: float | None
    latency_ms: float


class ServerInfo(BaseModel):
    world: str
    family: str
    obs_dim: int
    action_dim: int
    action_low: list[float]
    action_high: list[float]
    dt: float
    cameras: list[str]
    predicts: list[str]
    sessions: int
    limits: SessionLimits
    ws_steps: int = Field(0, description="WebSocket steps answered so far")
    ws_step_batches: int = Field(0, description="batched model calls those steps took (steps / batches: mean batch)")


def create_app(model, *, scale=None, token: str | None = None, limits: SessionLimits | None = None,
               batch_steps: bool = True) -> FastAPI:
    """A FastAPI app serving sessions of `model`. With `batch_steps` (the default), WebSocket steps that
    arrive together are stepped as one batch; without it, each is stepped alone as it comes."""
    limits = limits or SessionLimits()
    spec = model.spec
    sessions: dict[str, tuple[Session, threading.Lock]] = {}
    last_used: dict[str, float] = {}
    registry_lock = threading.Lock()
    from wmkit.worlds import make

    try:
        cameras = list(make(spec.world).cameras)
    except WmkitError:
        cameras = []
    # MuJoCo's GL contexts belong to the thread that made them: every frame is rendered on one thread
    render_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wmkit-render")
    # WebSocket steps run on the event loop itself (the GIL would serialise threads anyway: handing each
    # step to a worker thread cost more than the step), and those that arrive together are stepped as one
    # batch (`_StepQueue`): at N = 32 one batched model step replaces 32 (benchmarks/server_load.py)
    app = FastAPI(title="wmkit session server", version="1",
                  description=f"Step a {model.family} world model of {spec.world} beside its true twin.")

    @app.middleware("http")
    async def guard(request: Request, call_next):
        size = request.headers.get("content-length")
        if size is not None and size.isdigit() and int(size) > limits.max_request_bytes:
            return JSONResponse({"detail": f"request of {size} bytes exceeds the limit of "
                                           f"{limits.max_request_bytes}"}, status_code=413)
        if token and request.url.path.startswith("/api/") and not _authorized(request.headers, request.query_params):
            return JSONResponse({"detail": "missing or wrong token: send 'Authorization: Bearer <token>'"},
                                status_code=401)
        return await call_next(request)

    def _authorized(headers, params) -> bool:
        given = headers.get("authorization", "").removeprefix("Bearer ").strip() or params.get("token", "")
        return bool(given) and secrets.compare_digest(given, token)

    def _drop(sid: str) -> None:
        """Forget a session (the registry lock held); its renderers are freed on the render thread."""
        entry = sessions.pop(sid, None)
        last_used.pop(sid, None)
        if entry is not None:
            render_thread.submit(entry[0].close)

    def _expire() -> None:
        now = time.monotonic()
        with registry_lock:
            for sid in [s for s, t in last_used.items() if now - t > limits.idle_timeout_s]:
                _drop(sid)

    def _get(sid: str, expire: bool = True) -> tuple[Session, threading.Lock]:
        if expire:
            _expire()
        with registry_lock:
            if sid not in sessions:
                raise HTTPException(404, f"no session {sid!r} (closed, expired after "
                                         f"{limits.idle_timeout_s:g} s idle, or never created)")
            last_used[sid] = time.monotonic()
            return sessions[sid]

    def _add(session: Session) -> str:
        _expire()
        with registry_lock:
            if len(sessions) >= limits.max_sessions:
                raise HTTPException(429, f"{len(sessions)} sessions are open, the limit; close one first")
            sid = secrets.token_hex(8)
            sessions[sid] = (session, threading.Lock())
            last_used[sid] = time.monotonic()
            return sid

    def _info(sid: str, s: Session) -> SessionInfo:
        return SessionInfo(id=sid, t=s.t, obs=s.obs.tolist(),
                           twin_obs=None if s._twin_obs is None else np.asarray(s._twin_obs).tolist())

    def _wrap(fn):
        try:
            return fn()
        except WmkitError as e:
            raise HTTPException(422, str(e)) from None

    @app.get("/api/info", response_model=ServerInfo)
    def info() -> ServerInfo:
        return ServerInfo(world=spec.world, family=model.family, obs_dim=spec.obs_dim, action_dim=spec.action_dim,
                          action_low=list(spec.action_low), action_high=list(spec.action_high), dt=spec.dt,
                          cameras=cameras, predicts=list(spec.predicts), sessions=len(sessions), limits=limits,
                          ws_steps=queue.steps, ws_step_batches=queue.batches)

    @app.post("/api/sessions", response_model=SessionInfo, status_code=201)
    def create(req: CreateRequest) -> SessionInfo:
        session = _wrap(lambda: Session(model, seed=req.seed, physics=req.physics, twin=req.twin, scale=scale,
                                        max_history=limits.max_history))
        sid = _add(session)
        return _info(sid, session)

    @app.post("/api/sessions/{sid}/step", response_model=StepReply)
    def step(sid: str, req: StepRequest) -> StepReply:
        session, lock = _get(sid)
        with lock:
            return StepReply(**_wrap(lambda: session.step(req.action)).to_json())

    @app.post("/api/sessions/{sid}/fork", response_model=SessionInfo, status_code=201)
    def fork(sid: str) -> SessionInfo:
        session, lock = _get(sid)
        with lock:
            child = session.fork()
        return _info(_add(child), child)

    @app.post("/api/sessions/{sid}/rewind", response_model=SessionInfo)
    def rewind(sid: str, req: RewindRequest) -> SessionInfo:
        session, lock = _get(sid)
        with lock:
            _wrap(lambda: session.rewind(req.t))
            return _info(sid, session)

    @app.post("/api/sessions/{sid}/intervene", response_model=SessionInfo)
    def intervene(sid: str, req: InterveneRequest) -> SessionInfo:
        session, lock = _get(sid)
        with lock:
            _wrap(lambda: session.intervene(obs=req.obs, physics=req.physics))
            return _info(sid, session)

    @app.get("/api/sessions/{sid}/frame", responses={200: {"content": {"image/png": {}, "image/jpeg": {}}}},
             response_class=Response)
    def frame(sid: str, which: Literal["imagined", "twin"] = "imagined",
              size: int = Query(160, ge=16, le=512), camera: str | None = None,
              format: Literal["png", "jpeg"] = "png") -> Response:
        session, lock = _get(sid)
        if camera is not None and camera not in cameras:
            raise HTTPException(422, f"unknown camera {camera!r}; cameras: {', '.join(cameras) or 'none'}")
        with lock:
            image = _wrap(lambda: render_thread.submit(session.frame, which, camera, size).result())
        return Response(_encode(image, format), media_type=f"image/{format}")

    @app.delete("/api/sessions/{sid}", status_code=204)
    def close(sid: str) -> Response:
        _get(sid)
        with registry_lock:
            _drop(sid)
        return Response(status_code=204)

    def _step_batch(items: list[tuple[str, object]]) -> list[dict]:
        """WebSocket steps [(session id, action)] -> replies, in order: the valid ones in one `step_together`
        call (each session's lock held), the others answered with an error frame."""
        replies: list[dict | None] = [None] * len(items)
        ready: list[tuple[int, Session, threading.Lock, np.ndarray]] = []
        _expire()  # once per batch, not once per step in it
        for i, (sid, action) in enumerate(items):
            try:
                session, lock = _get(sid, expire=False)
                req = StepRequest(action=action)
                ready.append((i, session, lock, session.check_action(req.action)))
            except HTTPException as e:
                replies[i] = {"error": e.detail, "status": e.status_code}
            except WmkitError as e:
                replies[i] = {"error": str(e), "status": 422}
            except ValueError as e:  # pydantic validation
                replies[i] = {"error": f"invalid message: {e}".splitlines()[0]}
        for _, _, lock, _ in ready:
            lock.acquire()
        try:
            results = step_together([r[1] for r in ready], [r[3] for r in ready])
        finally:
            for _, _, lock, _ in ready:
                lock.release()
        for (i, *_), result in zip(ready, results):
            replies[i] = {"op": "step", **result.to_json()}
        return replies

    queue = _StepQueue(_step_batch)

    @app.websocket("/ws/sessions/{sid}")
    async def ws(websocket: WebSocket, sid: str):
        if token and not _authorized(websocket.headers, websocket.query_params):
            await websocket.close(code=1008, reason="missing or wrong token")
            return
        await websocket.accept()
        try:
            while True:
                text = await websocket.receive_text()
                await websocket.send_json(await _ws_reply(sid, text))
        except WebSocketDisconnect:
            return

    async def _ws_reply(sid: str, text: str) -> dict:
        """One WebSocket message -> one reply; every failure becomes an error frame, never a dropped server."""
        if len(text) > limits.max_request_bytes:
            return {"error": f"message of {len(text)} bytes exceeds the limit of {limits.max_request_bytes}"}
        try:
            msg = json.loads(text)
        except json.JSONDecodeError as e:
            return {"error": f"malformed JSON: {e}"}
        if not isinstance(msg, dict) or "op" not in msg:
            return {"error": "send an object with an 'op': step, fork, rewind, intervene or info"}
        try:
            op = msg["op"]
            if op == "step":
                if not batch_steps:
                    return _step_batch([(sid, msg.get("action"))])[0]
                return await queue.step(sid, msg.get("action"))
            if op == "fork":
                return {"op": "fork", **fork(sid).model_dump()}
            if op == "rewind":
                return {"op": "rewind", **rewind(sid, RewindRequest(t=msg.get("t"))).model_dump()}
            if op == "intervene":
                req = InterveneRequest(obs=msg.get("obs"), physics=msg.get("physics"))
                return {"op": "intervene", **intervene(sid, req).model_dump()}
            if op == "info":
                session, _ = _get(sid)
                return {"op": "info", **_info(sid, session).model_dump(), "latency_ms": session.latency_ms()}
            return {"error": f"unknown op {op!r}; use step, fork, rewind, intervene or info"}
        except HTTPException as e:
            return {"error": e.detail, "status": e.status_code}
        except ValueError as e:  # pydantic validation
            return {"error": f"invalid message: {e}".splitlines()[0]}

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        from importlib.resources import files

        return HTMLResponse(files("wmkit.interactive").joinpath("play.html").read_text())

    app.state.sessions = sessions
    return app


class _StepQueue:
    """Gathers the WebSocket steps that arrive together and answers them from one batched call.

    A step waits for nothing: the first one queued schedules a flush for the event loop's next turn,
    and every step whose message arrived by then joins it. When the server falls behind, more steps
    arrive per turn and batches grow, so the cost per step falls as the load rises. A session with two
    steps queued (two sockets on one session) takes the second in the next flush.
    """

    def __init__(self, step_batch):
        self.step_batch = step_batch  # [(session id, action)] -> [reply dict], in order
        self.pending: list[tuple[str, object, asyncio.Future]] = []
        self.scheduled = False
        self.steps = self.batches = 0  # answered so far, for /api/info

    async def step(self, sid: str, action) -> dict:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.pending.append((sid, action, future))
        if not self.scheduled:
            self.scheduled = True
            loop.call_soon(self.flush)
        return await future

    def flush(self) -> None:
        self.scheduled = False
        batch, later, seen = [], [], set()
        for item in self.pending:
            (later if item[0] in seen else batch).append(item)
            seen.add(item[0])
        self.pending = later
        if later:
            self.scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)
        batch = [item for item in batch if not item[2].done()]  # a client that vanished cancelled its wait
        self.steps, self.batches = self.steps + len(batch), self.batches + 1
        try:
            replies = self.step_batch([(sid, action) for sid, action, _ in batch])
        except Exception as e:  # a bug: every waiting step sees it, as it would have stepping alone
            for *_, future in batch:
                future.set_exception(e)
            return
        for (*_, future), reply in zip(batch, replies):
            future.set_result(reply)


def _encode(image: np.ndarray, fmt: str) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG" if fmt == "png" else "JPEG", quality=85)
    return buf.getvalue()
