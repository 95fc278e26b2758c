"""The REST service refuses a request body over `serving.max_request_bytes` with 413 before reading or parsing it:
at the limit a body is read and checked, one byte over it is refused, on `/score` and `/score/batch`, with and without
Content-Length, in the test client and on a real uvicorn server on loopback; refusals are not decisions."""
import asyncio, json, socket, threading, time, types
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from conftest import cli
from mlcore.data.contracts import input_contract
from mlcore.inference.serving import BodyLimit, DecisionLog, create_app

CONTRACT = input_contract(pd.DataFrame({"duration_in_month": [6, 48], "purpose": ["car (new)", "education"]}), {"duration_in_month": [1, 120]})
ONE = {"duration_in_month": 30, "purpose": "education"}


class Stub:
    "A model whose PD is the duration in months / 100"
    def predict(self, df): return np.column_stack([1 - df.duration_in_month / 100, df.duration_in_month / 100])


def app(tmp_path, limit, **kw):
    return create_app(Stub(), CONTRACT, {"name": "demo", "version": "1"}, DecisionLog(tmp_path / "log.jsonl"), max_request_bytes=limit, **kw)


def logged(tmp_path) -> list:
    f = tmp_path / "log.jsonl"
    return [json.loads(l) for l in f.read_text().splitlines()] if f.exists() else []


def pad(body: bytes, n: int) -> bytes:
    "The JSON `body` padded with trailing spaces to exactly `n` bytes (still the same JSON)"
    assert len(body) <= n
    return body.ljust(n)


BODIES = {"/score": json.dumps(ONE).encode(), "/score/batch": json.dumps({"applicants": [ONE] * 5}).encode()}
BAD = {"/score": json.dumps({**ONE, "purpose": "yacht"}).encode(), "/score/batch": json.dumps({"applicants": [{**ONE, "purpose": "yacht"}] * 5}).encode()}
LIMIT = 1000


@pytest.mark.parametrize("path", ["/score", "/score/batch"])
def test_body_at_the_limit_is_read_one_byte_more_gets_413(tmp_path, path):
    client = TestClient(app(tmp_path, LIMIT))
    r = client.post(path, content=pad(BODIES[path], LIMIT), headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text                                    # at the limit: scored
    r = client.post(path, content=pad(BAD[path], LIMIT))
    assert r.status_code == 422 and "unknown category 'yacht'" in r.text   # at the limit: refused for its content, not its size
    before = logged(tmp_path)
    r = client.post(path, content=pad(BODIES[path], LIMIT + 1))
    assert r.status_code == 413, r.text
    assert set(r.json()) == {"request_id", "errors"} and r.json()["request_id"]   # the service's error shape
    assert r.json()["errors"] == [{"field": "(body)", "problem": f"request body is larger than {LIMIT} bytes"}]
    assert r.headers["content-type"] == "application/json" and r.headers["connection"] == "close"
    assert logged(tmp_path) == before and {l["status"] for l in before} == {"ok"}   # a refusal is not a decision


@pytest.mark.parametrize("path", ["/score", "/score/batch"])
def test_chunked_body_without_length_is_counted(tmp_path, path):
    client = TestClient(app(tmp_path, LIMIT))
    body = pad(BODIES[path], LIMIT)
    def chunks(b, n=64): return (b[i:i + n] for i in range(0, len(b), n))   # a generator: httpx sends it chunked, no Content-Length
    assert client.post(path, content=chunks(body)).status_code == 200
    r = client.post(path, content=chunks(body + b" "))
    assert r.status_code == 413 and r.json()["errors"][0]["field"] == "(body)", r.text
    r = client.post(path, content=chunks(b"[" * 5000))                    # not JSON either: the size is refused first
    assert r.status_code == 413


def test_batch_limit_on_applicants_still_413(tmp_path):
    client = TestClient(app(tmp_path, 1 << 20, max_batch=3))
    r = client.post("/score/batch", json={"applicants": [ONE] * 4})
    assert r.status_code == 413 and r.json()["errors"] == [{"field": "applicants", "problem": "at most 3 applicants per request, got 4"}]


def test_openapi_documents_413_on_both_endpoints(tmp_path):
    paths = TestClient(app(tmp_path, 4096, max_batch=7)).get("/openapi.json").json()["paths"]
    score, batch = paths["/score"]["post"]["responses"], paths["/score/batch"]["post"]["responses"]
    assert score["413"]["description"] == "request body larger than 4096 bytes"
    assert batch["413"]["description"] == "more than 7 applicants, or request body larger than 4096 bytes"
    for r in (score, batch):
        assert r["413"]["content"]["application/json"]["schema"]["required"] == ["request_id", "errors"]


def run_middleware(limit: int, headers: list, messages: list) -> tuple:
    "Drive `BodyLimit` around an app that reads the whole body; (status, messages pulled from the server, body the app saw)"
    pulled, sent, seen = [], [], []
    async def receive():
        pulled.append(1)
        return messages[len(pulled) - 1] if len(pulled) <= len(messages) else {"type": "http.disconnect"}
    async def send(m): sent.append(m)
    async def inner(scope, receive, send):
        body, more = b"", True
        while more: m = await receive(); body += m.get("body", b""); more = m.get("more_body", False)
        seen.append(body)
        await send({"type": "http.response.start", "status": 200, "headers": []}); await send({"type": "http.response.body", "body": b""})
    scope = {"type": "http", "method": "POST", "path": "/score", "headers": headers, "query_string": b""}
    asyncio.run(BodyLimit(inner, limit)(scope, receive, send))
    return sent[0]["status"], len(pulled), seen


def test_middleware_stops_reading_at_the_limit():
    stream = [{"type": "http.request", "body": b"x" * 100, "more_body": True} for _ in range(1000)]   # 100 KB, chunked
    status, pulled, seen = run_middleware(250, [], stream)
    assert (status, pulled, seen) == (413, 3, [])                       # the third chunk passes 250 bytes: nothing more read
    status, pulled, seen = run_middleware(250, [(b"content-length", b"20000000")], stream)
    assert (status, pulled, seen) == (413, 0, [])                       # declared too large: not one message read
    ok = [{"type": "http.request", "body": b"x" * 100, "more_body": True}, {"type": "http.request", "body": b"x" * 150, "more_body": False}]
    assert run_middleware(250, [], ok) == (200, 2, [b"x" * 250])        # within the limit: the app gets the body unchanged
    with pytest.raises(ValueError, match="positive number of bytes"): BodyLimit(None, 0)


def test_app_from_registry_and_workers_take_the_limit_from_settings(tmp_path, store, monkeypatch):
    "The limit reaches the app from params/settings.yaml's default, from MLCORE_MAX_REQUEST_BYTES and from `serve`'s argument"
    import mlcore.registry.integrity, mlcore.inference.serving as sv
    mv = types.SimpleNamespace(name="demo", version=1, run_id="r1")
    monkeypatch.setattr(sv, "load_verified_model", lambda ref: (Stub(), mv))   # serving imports it at the top
    monkeypatch.setattr(sv, "model_contract", lambda mv, model: CONTRACT)
    monkeypatch.delenv("MLCORE_MAX_REQUEST_BYTES", raising=False)
    body = pad(BODIES["/score"], 2000)
    assert TestClient(sv.app_from_registry("demo@champion", tmp_path / "a.jsonl")).post("/score", content=body).status_code == 200
    monkeypatch.setenv("MLCORE_MAX_REQUEST_BYTES", "1999")
    monkeypatch.setenv("MLCORE_SERVE_MODEL", "demo@champion")
    monkeypatch.setenv("MLCORE_SERVE_DECISION_LOG", str(tmp_path / "b.jsonl"))
    assert TestClient(sv.app_from_env()).post("/score", content=body).status_code == 413
    assert TestClient(sv.app_from_registry("demo@champion", max_request_bytes=2000)).post("/score", content=body).status_code == 200
    import uvicorn
    runs = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: runs.append((app, kw)))
    sv.serve("demo@champion", workers=2, max_request_bytes=1234)         # each worker's load_settings reads the variable
    assert runs[0][0] == "mlcore.inference.serving:app_from_env" and sv.os.environ["MLCORE_MAX_REQUEST_BYTES"] == "1234"
    assert TestClient(sv.app_from_env()).post("/score", content=pad(BODIES["/score"], 1235)).status_code == 413


def test_mlcore_serve_refuses_a_bad_limit_naming_where_it_came_from(store):
    r = cli("serve", "--model", "demo@champion", env={**store, "MLCORE_MAX_REQUEST_BYTES": "0"}, timeout=120)
    assert r.returncode == 2 and "environment: 'MLCORE_MAX_REQUEST_BYTES': expected a positive number of bytes, got 0" in r.stderr, r.stderr
    assert "--model" not in r.stderr
    r = cli("serve", "--model", "demo@champion", "--max-request-bytes", "0", env=store, timeout=120)
    assert r.returncode == 2 and "--max-request-bytes must be at least 1" in r.stderr, r.stderr


# --- a real uvicorn server on loopback --------------------------------------------------------------------------------

@pytest.fixture(params=["h11", "httptools"])
def server(request, tmp_path):
    "The app (default limit, 1 MiB) under uvicorn on 127.0.0.1, with either HTTP parser; stopped after the test"
    import uvicorn
    from mlcore.ops.cluster import free_port
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(Stub(), CONTRACT, {"name": "demo", "version": "1"}, DecisionLog(tmp_path / "log.jsonl")),
                                        host="127.0.0.1", port=port, http=request.param, log_level="warning"))
    th = threading.Thread(target=srv.run, daemon=True)
    th.start()
    for _ in range(200):
        if srv.started: break
        time.sleep(0.05)
    else: pytest.fail("uvicorn did not start")
    yield port
    srv.should_exit = True
    th.join(timeout=10)


def answer(s: socket.socket) -> bytes:
    "Everything the server sends until it closes the connection (or resets it once it has answered)"
    out = b""
    try:
        while b := s.recv(65536): out += b
    except ConnectionResetError:
        if not out: raise
    return out


HEAD = b"POST /score HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"


def test_real_server_refuses_20_mb_declared_body_without_waiting_for_it(server, tmp_path):
    with socket.create_connection(("127.0.0.1", server), timeout=5) as s:
        s.sendall(HEAD + b"Content-Length: 20000000\r\n\r\n" + b"x" * 65536)   # the rest is never sent: an answer needs no body
        out = answer(s)                                                       # a server waiting for 20 MB times out here
    assert out.startswith(b"HTTP/1.1 413 "), out[:200]
    assert b"connection: close" in out.lower() and b'"field":"(body)"' in out
    assert logged(tmp_path) == []


def test_real_server_cuts_off_a_chunked_body_at_the_limit(server):
    chunk = b"x" * 65536
    with socket.create_connection(("127.0.0.1", server), timeout=5) as s:
        s.sendall(HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + (b"%x\r\n" % len(chunk) + chunk + b"\r\n") * 17)   # 1.06 MiB, never ended
        out = answer(s)
    assert out.startswith(b"HTTP/1.1 413 "), out[:200]


def test_real_server_answers_413_to_a_client_sending_20_mb(server):
    "A client that pushes a whole 20 MB body gets the 413 and is cut off after a fraction of it"
    n, sent = 20_000_000, {"bytes": 0, "error": None}
    s = socket.create_connection(("127.0.0.1", server), timeout=10)
    def pump():
        buf = memoryview(b"x" * 65536)
        try:
            s.sendall(HEAD + b"Content-Length: %d\r\n\r\n" % n)
            while sent["bytes"] < n: sent["bytes"] += s.send(buf[:n - sent["bytes"]])
        except OSError as e: sent["error"] = type(e).__name__
    th = threading.Thread(target=pump); th.start()
    try: out = answer(s)
    finally: th.join(timeout=30); s.close()
    assert out.startswith(b"HTTP/1.1 413 "), out[:200]
    assert sent["error"] in ("BrokenPipeError", "ConnectionResetError") and sent["bytes"] < n // 2, sent
