"""Every `mlcore` command line the project ships (Kubernetes manifests, the Dockerfile, the Makefile, the README) is
parsed with the CLI's own parser, and the jobs and parameter files it names exist and accept its parameters: a renamed
command, option or job cannot leave a scheduler calling something that no longer exists."""
import argparse
import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

from mlcore.commands.main import _parser
from mlcore.ops.runner import job_notebook, job_parameters, resolve_params

ROOT = Path(__file__).resolve().parents[2]
PLACEHOLDER = re.compile(r"^[A-Z][A-Z_]*$|\.\.\.$")   # JOB, MODEL, VERSION, ... in documentation


def _subcommands(p: argparse.ArgumentParser) -> dict:
    acts = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
    return acts[0].choices if acts else {}


def _from_manifests() -> list:
    out = []
    for f in sorted((ROOT / "deploy" / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(f.read_text()):
            spec = (doc or {}).get("spec", {})
            pod = spec.get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec") or \
                spec.get("template", {}).get("spec") or {}
            for c in pod.get("containers", []):
                if "mlcore" in c.get("image", "") and "command" not in c and c.get("args"):
                    out.append((f"{f.relative_to(ROOT)}:{c['name']}", [str(a) for a in c["args"]]))
    return out


def _from_dockerfile() -> list:
    text = (ROOT / "deploy" / "Dockerfile").read_text()
    entry = json.loads(re.search(r"^ENTRYPOINT (\[.*\])$", text, re.M).group(1))
    cmd = json.loads(re.findall(r"^CMD (\[.*\])$", text, re.M)[-1])
    return [("deploy/Dockerfile:CMD", cmd)] if entry == ["mlcore"] else []


def _args(rest: str) -> list:
    "Shell words of one command: up to a comment, `;`, `|` or `&&`; a quote left open by an enclosing echo is dropped"
    if rest.count('"') % 2: rest = rest[:rest.rindex('"')]
    lex = shlex.shlex(rest, posix=True, punctuation_chars=";&|")
    lex.whitespace_split, lex.commenters = True, "#"
    words = []
    for w in lex:
        if set(w) <= set(";&|"): break
        words.append(w)
    words = [re.sub(r"\$\$\{[^}]*\}|\$\{[^}]*\}", "1", w) for w in words]   # shell variables: ${PORT:-5001}
    return [w for w in words if w != "..."]


def _split(where: str, text: str, start: str) -> list:
    "The `mlcore` commands in one line of shell text; `start` is the pattern that must come just before `mlcore `"
    text = re.sub(r"\[[^\]]*\]", "", text)                  # optional parts in documentation: [-p key=value]
    return [(where, _args(text[m.end():])) for m in re.finditer(start + r"mlcore[ \t]+", text)]


def _from_makefile() -> list:
    text = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    return [c for l in text.splitlines() for c in _split(f"Makefile: {l.strip()[:60]}", l, r"(?:\$\(BIN\)|\.venv/bin)/")]


def _from_docs(name: str, text: str) -> list:
    blocks = [l for b in re.findall(r"```(?:sh|bash)?\n(.*?)```", text, re.S) for l in b.splitlines()]
    spans = re.findall(r"`(mlcore [^`\n]*)`", text)
    return [c for l in blocks + spans for c in _split(f"{name}: {l.strip()[:60]}", l, r"(?:^|(?<=/)|(?<=\$ ))")]


def _from_readme() -> list:
    return _from_docs("README", (ROOT / "README.md").read_text())


def _from_guides() -> list:
    "The guides (nbs/guides/*.ipynb): the README's detail, as docs pages"
    import json
    out = []
    for p in sorted((ROOT / "nbs" / "guides").glob("*.ipynb")):
        text = "\n".join("".join(c["source"]) for c in json.loads(p.read_text())["cells"] if c["cell_type"] == "markdown")
        out += _from_docs(f"guide {p.stem}", text)
    return out


COMMANDS = _from_manifests() + _from_dockerfile() + _from_makefile() + _from_readme() + _from_guides()


def test_every_source_was_read():
    wheres = {w.split(":")[0] for w, _ in COMMANDS}
    assert {"deploy/Dockerfile", "Makefile", "README", "guide 02_operating", "guide 03_deploying"} <= wheres, wheres
    assert sum(w.startswith("deploy/k8s/") for w, _ in COMMANDS) >= 4, COMMANDS
    assert len(COMMANDS) >= 30, len(COMMANDS)


def _check(argv: list):
    "Parse `argv` as `mlcore` does; a bare mention of a command (`mlcore approve`) only needs the command to exist"
    p = _parser()
    words = [a for a in argv if not PLACEHOLDER.search(a)]
    node, depth = p, 0
    while depth < len(words) and words[depth] in _subcommands(node):
        node, depth = _subcommands(node)[words[depth]], depth + 1
    if depth == 0: raise AssertionError(f"'{argv[0] if argv else ''}' is not an mlcore command")
    if len(argv) == depth: return None   # a mention of a command group or command
    try: return p.parse_args(["1" if PLACEHOLDER.search(a) else a for a in argv])   # placeholders stand for values
    except SystemExit: raise AssertionError(f"mlcore's parser refuses: mlcore {' '.join(argv)}") from None


@pytest.mark.parametrize("where,argv", COMMANDS, ids=[f"{w} :: {' '.join(a)}"[:120] for w, a in COMMANDS])
def test_command_line_parses_and_names_what_exists(where, argv):
    a = _check(argv)
    if a is None: return
    job = getattr(a, "job", None)                 # `run JOB ...` and `monitor run ...`
    if job is None or any(PLACEHOLDER.search(w) for w in argv[:2]): return
    nb = job_notebook(job)                       # the job exists
    if a.params_file and not any(PLACEHOLDER.search(x) for x in re.split(r"[/.]", a.params_file)):
        assert (ROOT / a.params_file).is_file(), f"{where}: no parameter file {a.params_file}"
        resolve_params(job, job_parameters(nb), ROOT / a.params_file, a.param)   # and its keys and types fit the job


def test_a_renamed_option_is_caught():
    "The check itself fails on a command the CLI no longer accepts"
    with pytest.raises(AssertionError, match="parser refuses"):
        _check(["monitor", "run", "--param-file", "params/credit_pd/monitor.yaml"])
    with pytest.raises(AssertionError, match="not an mlcore command"):
        _check(["monitoring", "run"])
