"""The audit log: hash chain, tamper detection (edit, delete, cut off, reorder), champion history, CLI."""
import json, threading
import pytest
from conftest import cli
from mlcore.registry.governance import AuditLog


@pytest.fixture
def log(tmp_path, monkeypatch):
    path = tmp_path / "audit" / "lifecycle.jsonl"
    monkeypatch.setenv("MLCORE_AUDIT_LOG", str(path))
    lg = AuditLog()
    assert lg.path == path
    lg.append("registered", "m", "1", "alice", "trained", {"run_id": "r1"})
    lg.append("validated", "m", "1", "carol", "passed", {"report": "runs:/v1/validation/report.html"})
    lg.append("approved", "m", "1", "bob", "fit for use")
    lg.append("champion_moved", "m", "1", "bob", "champion (none) -> 1")
    lg.append("registered", "m", "2", "alice", "retrained")
    lg.append("approved", "m", "2", "bob", "better")
    lg.append("champion_moved", "m", "2", "bob", "champion 1 -> 2")
    lg.append("retired", "m", "1", "bob", "replaced")
    assert lg.verify() == []
    return lg


def lines(lg): return lg.path.read_text().splitlines()
def write(lg, ls): lg.path.write_text("\n".join(ls) + "\n")


def test_intact_log_verifies_from_cli(log, capsys):
    from mlcore.commands.main import main
    assert main(["audit", "verify"]) == 0 and "intact (8 entries)" in capsys.readouterr().out


def test_edit_is_detected(log):
    ls = lines(log)
    e = json.loads(ls[2]); e["who"] = "alice"
    ls[2] = json.dumps(e, sort_keys=True)
    write(log, ls)
    assert any("line 3" in p and "entry edited" in p for p in log.verify())


def test_edit_with_recomputed_hash_is_detected(log):
    # a forger who recomputes the edited entry's hash breaks the next entry's link instead
    import hashlib
    from mlcore.registry.governance import _canonical
    ls = lines(log)
    e = json.loads(ls[2]); e["who"] = "alice"; del e["hash"]
    e["hash"] = hashlib.sha256(_canonical(e)).hexdigest()
    ls[2] = json.dumps(e, sort_keys=True)
    write(log, ls)
    probs = log.verify()
    assert probs and "line 4" in probs[0] and "link broken" in probs[0]


def test_deletion_in_the_middle_is_detected(log):
    write(log, lines(log)[:3] + lines(log)[4:])
    assert any("entry deleted" in p for p in log.verify())


def test_deletion_at_the_end_is_detected(log):
    write(log, lines(log)[:-2])
    probs = log.verify()
    assert len(probs) == 1 and "entries cut off" in probs[0]


def test_reordering_is_detected(log):
    ls = lines(log)
    ls[4], ls[5] = ls[5], ls[4]
    write(log, ls)
    assert any("reordered" in p for p in log.verify())


def test_cli_verify_fails_on_tampered_log(log):
    import os
    write(log, lines(log)[:-1])
    r = cli("audit", "verify", env={**os.environ})
    assert r.returncode == 1 and "TAMPERED" in r.stderr and "cut off" in r.stderr
    from mlcore.commands.main import main
    assert main(["audit", "champion", "m", "--at", "2100-01-01"]) == 1


def test_champion_history(log):
    es = log.entries()
    ts = {(e["event"], e["version"]): e["ts"] for e in es}
    assert log.champion_at("m", "2000-01-01") is None
    assert log.champion_at("m", ts[("champion_moved", "1")]) == "1"
    assert log.champion_at("m", ts[("registered", "2")]) == "1"
    assert log.champion_at("m", ts[("champion_moved", "2")]) == "2"
    assert log.champion_at("other", ts[("champion_moved", "2")]) is None
    with pytest.raises(ValueError): log.champion_at("m", "yesterday")


def test_concurrent_appends_keep_the_chain(tmp_path):
    lg = AuditLog(tmp_path / "a.jsonl")
    ts = [threading.Thread(target=lambda i=i: [lg.append("validated", "m", str(i), f"u{i}") for _ in range(10)]) for i in range(4)]
    for t in ts: t.start()
    for t in ts: t.join()
    assert len(lg.entries()) == 40 and lg.verify() == []


def test_append_refuses_bad_events(tmp_path):
    lg = AuditLog(tmp_path / "a.jsonl")
    with pytest.raises(ValueError, match="unknown audit event"): lg.append("promoted", "m", "1", "x")
    with pytest.raises(ValueError, match="needs who"): lg.append("approved", "m", "1", "")
