"""Builds the browsable documentation from `nbs/`: a home page, one page per library notebook with its API reference, the tutorials and the job notebooks with their parameters, as plain static HTML.

Project tooling, not part of the runtime package: `python tools/docs_site.py build` (or `make docs`) and
`python tools/docs_site.py serve` (`make docs-serve`). How it works:

The documentation is generated from the notebooks, so it cannot drift from the code. nbdev's own route (`nbdev_docs`) needs Quarto; where `quarto` is on the `PATH`, `make docs` uses it. Quarto cannot be installed on the team's machines, so `build_site` produces a complete site without it, using nbdev's own notebook processors (which insert a `show_doc` entry after every exported symbol) and nbconvert's HTML exporter:

1. every notebook under `nbs/` is found and given a page (`discover`),
2. it is executed in a fresh kernel against a throwaway MLflow store, so the pages show real outputs: tables, plots, printed results (`execute`); cells marked `#| notest` are **not** executed (they are slow and covered by `tests/`), their code is shown without output,
3. exported and hidden cells are removed, API entries (signature, docstring, argument comments) take their place, and links are made relative (`render_page`),
4. every page gets a sidebar listing all pages; a symbol index lists every exported name.

The site is written to a temporary folder and moved into place only when every page built, so a failed build never leaves a half-updated site.

## Pages

A page's address follows nbdev's convention (the number prefix is dropped: `25_drift.ipynb` becomes `drift.html`), which is also how `mlcore/_modidx.py` names the page of each symbol. Notebooks in `jobs/` and `tutorials/` keep their folder.

`discover` lists every notebook that gets a page. The site builder knows nothing about particular notebooks: a notebook added under `nbs/` appears in the site on the next build.

## Executing notebooks

Each notebook runs in its own kernel (the project's `python3` kernel), in its own folder as in JupyterLab, with `MLFLOW_TRACKING_URI`, `MLCORE_ARTIFACT_ROOT` and `MLCORE_RUNS_DIR` pointing into a throwaway folder: building the docs never writes to the project's MLflow store. A cell that fails stops the build with the notebook, the cell and the error.

A three-cell notebook shows the rules: normal cells run and keep their output, a `#| notest` cell is shown without running, and a failing cell stops with the notebook and the error.

## API entries

nbdev's `add_show_docs` processor inserts a `show_doc(name)` cell after each exported cell for every public function and class in it. Members of exported classes (methods and properties, as listed in `mlcore/_modidx.py`) get their own entry too, so every name in the index has a place on its page. The `show_doc` cells run with the rest of the notebook, so the entries show the real signatures, docstrings and argument comments.

## Job parameters

A job page starts with its parameters, read with the runner's own `job_parameters` (papermill's inspection of the `parameters` cell), and the command a scheduler runs for each parameter file that exists for the job.

## Rendering a page

After execution, nbdev's processors tidy the notebook as they would for Quarto: exported and hidden cells disappear (the API entries stand in for them), `#| hide_line` and `#| filter_stream` apply, and backticked names become links to their API entries. nbconvert's HTML exporter turns the result into HTML; the page frame adds the sidebar. Links are made relative so the site works from any folder and offline: nbdev's links to `doc_host` and links to other notebooks (`80_runner.ipynb`) point to the right page, and each API heading gets the anchor `mlcore/_modidx.py` uses.

A toy page, rendered without a kernel: the exported cell disappears, the API entry shows without its `show_doc` call and gets nbdev's anchor, a link to another notebook is rewritten to its page, and the sidebar lists all pages.

Plots travel inside the page (nbconvert embeds images as data URIs), so the site needs no image files and works offline:

## The symbol index

A search-free but complete index: every public exported symbol with its one-line docstring, grouped by module, linking to its API entry.

## Building the site

`build_site` ties it together. Executed notebooks are cached under `cache` keyed by a hash of the notebook, the library and `params/`, so rebuilding after editing one notebook re-executes only that notebook (and everything after a library change). `execute="api"` runs only what the API entries need (exported cells, imports and `show_doc` cells), for a quick preview; `execute="all"` (the default) runs everything. `skip_kinds` leaves tutorials or jobs unexecuted and `full` limits full execution to a few pages: the docs test uses both, because the notebook tests already run every notebook and executing all of them twice costs minutes on two cores. Two notebooks run at a time.

Building the whole site executes every notebook, which takes minutes on two cores, so it runs in `make docs` and in `tests/project/test_docs.py`, not here.

## Command line

`python tools/docs_site.py build` builds the site (with nbdev's `nbdev_docs` instead when Quarto is installed, unless `--no-quarto`); `python tools/docs_site.py serve` serves it on loopback only.
"""

import argparse, hashlib, html, json, os, posixpath, re, shutil, sys, tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
import nbformat
import importlib
from configparser import ConfigParser
import functools, http.server
import subprocess

@dataclass
class Page:
    "One notebook and the page it becomes"
    src: Path    # notebook, relative to the notebooks folder
    kind: str    # 'home', 'library', 'tutorial' or 'job'
    url: str     # page address relative to the site root
    title: str   # first level-1 heading of the notebook

def page_url(src:str|Path # notebook path relative to the notebooks folder
            )->str:
    "Site address of a notebook's page: number prefix dropped, folders kept"
    p = Path(src)
    stem = re.sub(r"^\d+[_-]", "", p.stem)
    return posixpath.join(*p.parent.parts, f"{stem}.html") if p.parent.parts else f"{stem}.html"

_KINDS = {"jobs": "job", "tutorials": "tutorial", "guides": "guide"}

def _title(nb)->str:
    for c in nb.cells:
        if c.cell_type == "markdown" and (m := re.search(r"^#\s+(.+)$", c.source, re.M)): return m.group(1).strip()
    return ""

def discover(nbs:str|Path # the notebooks folder
            )->list:
    "Every notebook under `nbs` as a `Page`: home first, then library, tutorials and jobs, each in file order"
    nbs, pages = Path(nbs), []
    for p in sorted(nbs.rglob("*.ipynb")):
        rel = p.relative_to(nbs)
        if any(part.startswith((".", "_")) for part in rel.parts): continue
        kind = "home" if rel == Path("index.ipynb") else _KINDS.get(rel.parts[0], "library") if len(rel.parts) > 1 else "library"
        pages.append(Page(rel, kind, page_url(rel), _title(nbformat.read(p, as_version=4)) or rel.stem))
    order = {"home": 0, "guide": 1, "library": 2, "tutorial": 3, "job": 4}
    return sorted(pages, key=lambda pg: (order[pg.kind], str(pg.src)))

def _directives(src:str)->set:
    "nbdev directives (`#| name`) at the top of a cell"
    out = set()
    for line in src.splitlines():
        if not line.strip(): continue
        if not (m := re.match(r"^\s*#\s*\|\s*([\w-]+)", line)): break
        out.add(m.group(1) + (":false" if re.search(r"eval\s*:\s*false", line) else ""))
    return out

def _skipped(cell, flags=("notest",))->bool:
    d = _directives(cell.source)
    return bool(d & set(flags)) or "eval:false" in d

class NotebookFailed(RuntimeError):
    "A notebook cell raised while building the docs"

def execute(nb,                 # notebook to run, modified in place
            cwd:str|Path,       # working folder of the kernel
            env:dict|None=None, # environment variables for the kernel
            timeout:int=600,    # per-cell timeout in seconds
            only=None,          # predicate on cells: run only these (default: all but skipped ones)
            name:str=""         # notebook name for error messages
           ):
    "Run `nb` cell by cell in a fresh kernel; `#| notest` and `#| eval: false` cells keep no output"
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError
    old = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(cwd)}})
        with client.setup_kernel():
            for i, cell in enumerate(nb.cells):
                if cell.cell_type != "code": continue
                if _skipped(cell) or (only and not only(cell)): cell.outputs = []; continue
                try: client.execute_cell(cell, i)
                except CellExecutionError as e:
                    raise NotebookFailed(f"{name}: cell {i} failed: {str(e).splitlines()[-1] if str(e) else e}\n{cell.source[:300]}") from None
    finally:
        for k, v in old.items():
            if v is None: os.environ.pop(k, None)
            else: os.environ[k] = v
    return nb

def module_symbols(modidx:dict|None=None # nbdev's index (default: `mlcore._modidx.d`)
                  )->dict:
    "Page (e.g. 'drift.html') -> {public symbol: anchor} from nbdev's symbol index"
    if modidx is None:
        from mlcore._modidx import d as modidx
    out = {}
    for mod, syms in modidx["syms"].items():
        for full, (loc, _) in syms.items():
            name = full[len(mod)+1:]
            if any(part.startswith("_") for part in name.split(".")): continue
            page, _, anchor = loc.partition("#")
            out.setdefault(page, {})[name] = anchor
    return out

_CELL_KEYS = {"cell_type", "source", "metadata", "outputs", "execution_count", "attachments", "id"}

def add_api_cells(nb,           # notebook (nbformat), modified in place
                  members:dict  # public symbols of this notebook's page (`module_symbols()[page]`)
                 ):
    "Insert nbdev's `show_doc` cells after exported code, plus entries for public class members"
    from nbdev.process import NBProcessor
    from nbdev.processors import add_show_docs
    from execnb.nbio import dict2nb
    proc = NBProcessor(nb=dict2nb(nb), procs=[add_show_docs], rm_directives=False)
    proc.process()
    cells, shown = [], {c.source.strip()[9:-1] for c in proc.nb.cells
                        if c.cell_type == "code" and re.fullmatch(r"show_doc\([\w.]+\)", c.source.strip())}
    patched = lambda src: [f"{k}.{n}" for n, k in re.findall(r"^@patch\s*\n(?:@\w+\s*\n)*def (\w+)\(self\s*:\s*(\w+)", src, re.M)]
    later = {m for c in proc.nb.cells if c.cell_type == "code" for m in patched(c.source)}  # entries after their own cell
    for c in proc.nb.cells:
        cell = nbformat.from_dict({k: v for k, v in c.items() if k in _CELL_KEYS})
        if cell.cell_type == "code": cell.setdefault("outputs", []); cell.setdefault("execution_count", None)
        cell.setdefault("metadata", {})
        cells.append(cell)
        if cell.cell_type != "code": continue
        if m := re.fullmatch(r"show_doc\((\w+)\)", cell.source.strip()):
            cells += [nbformat.v4.new_code_cell(f"show_doc({m.group(1)}.{n.split('.', 1)[1]})")
                      for n in members if n.startswith(m.group(1) + ".") and n not in later]
        cells += [nbformat.v4.new_code_cell(f"show_doc({n})") for n in patched(cell.source) if n in members and n not in shown]
    nb.cells = [nbformat.v4.new_code_cell("#| hide\nfrom nbdev.showdoc import show_doc")] + cells
    for c in nb.cells: c.pop("id", None)
    return nb

def _md_cell(s): return nbformat.v4.new_markdown_cell(s)

def parameters_markdown(notebook:str|Path,      # job notebook
                        params_dir:str|Path|None=None # the project's params/ folder: lists the files for this job
                       )->str:
    "Markdown table of a job's parameters (name, type, default, comment) and how to run it"
    from mlcore.ops.runner import job_parameters
    job = Path(notebook).stem
    esc = lambda s: str(s).replace("|", "\\|")
    rows = [f"| `{p.name}` | `{esc(p.type)}` | `{esc(p.default)}` | {esc(p.help)}{' (required)' if p.required else ''} |"
            for p in job_parameters(notebook).values()]
    files = sorted(Path(params_dir).glob(f"*/{job}.yaml")) if params_dir else []
    runs = "\n".join(f"mlcore run {job} -f params/{f.parent.name}/{f.name}" for f in files) or f"mlcore run {job} -p name=value"
    return "\n".join(["## Parameters", "", "| name | type | default | comment |", "|---|---|---|---|", *rows, "",
                      "Run it as a scheduler would (`-p name=value` overrides one value; `mlcore jobs` lists every job):",
                      "", "```sh", runs, "```"])

def _tidy(nb):
    "nbdev's post-execution processors: hide exported/hidden cells, directives, links"
    from nbdev.process import NBProcessor
    from nbdev.processors import (rm_export, hide_, hide_line, filter_stream_, strip_ansi, clean_magics, add_links,
                                  rm_header_dash, populate_language)
    from execnb.nbio import dict2nb
    for c in nb.cells:  # nbdev's processors expect output text as lists of lines, as stored on disk
        for o in c.get("outputs", []):
            if isinstance(o.get("text"), str): o["text"] = o["text"].splitlines(True)
            for k, v in o.get("data", {}).items():
                if k.startswith("text/") and isinstance(v, str): o["data"][k] = v.splitlines(True)
    p = NBProcessor(nb=dict2nb(nb), procs=[populate_language, rm_export, hide_, hide_line, filter_stream_, strip_ansi,
                                           clean_magics, rm_header_dash, add_links])
    p.process()
    cells = []
    for c in p.nb.cells:
        cell = nbformat.from_dict({k: v for k, v in c.items() if k in _CELL_KEYS})
        for o in cell.get("outputs", []):
            if isinstance(o.get("text"), list): o["text"] = "".join(o["text"])
            for k, v in o.get("data", {}).items():
                if isinstance(v, list): o["data"][k] = "".join(v)
        cells.append(cell)
    for c in cells:
        if c.cell_type != "code": continue
        if re.match(r"\s*show_doc\(", c.source): c.metadata["tags"] = [*c.metadata.get("tags", []), "remove_input"]
        # warnings and library log lines are noise for a reader; printed results and errors stay
        c.outputs = [o for o in c.get("outputs", []) if not (o.get("output_type") == "stream" and o.get("name") == "stderr")]
    nb.cells = cells
    return nb

def _relink(soup, page_url:str, urls:dict, doc_prefix:str):
    "Make links relative: nbdev doc links and links to notebooks point to the pages of this site"
    here = posixpath.dirname(page_url)
    rel = lambda target: posixpath.relpath(target, here or ".")
    for a in soup.find_all("a", href=True):
        h = a["href"]
        if doc_prefix and h.startswith(doc_prefix):
            a["href"] = rel(h[len(doc_prefix):].lstrip("/")) if h[len(doc_prefix):].lstrip("/") else rel("index.html")
        elif not re.match(r"^[a-z][a-z0-9+.-]*:|^#", h) and (m := re.match(r"^([^#?]*\.ipynb)(#.*)?$", h)):
            target = posixpath.normpath(posixpath.join(here, m.group(1)))
            if target not in urls and m.group(1).startswith("nbs/"):   # a README link (from the project root)
                target = posixpath.normpath(m.group(1)[len("nbs/"):])
            if target in urls: a["href"] = rel(urls[target]) + (m.group(2) or "")

def _anchors(soup):
    "Give API headings the lowercase anchors nbdev's index uses (`jobparam.value`)"
    for h in soup.select(".output_area h2, .output_area h3, .output_area h4"):
        name = h.get_text(strip=True).rstrip("¶").strip()
        if re.fullmatch(r"[\w.]+", name):
            aid = name.lower()
            if not soup.find(id=aid): h.insert(0, soup.new_tag("a", id=aid, **{"class": "api-anchor"}))
            h.parent["class"] = h.parent.get("class", []) + ["api-entry"]

_CODE_SPAN = re.compile(r"```.*?```|`[^`\n]*`", re.S)
_MATH = re.compile(r"\$\$(.+?)\$\$|(?<![\\$\w])\$(?=\S)([^$\n]+?)(?<=\S)\$(?!\w)", re.S)

def math_to_mathml(md:str, where:str="")->str:
    "Markdown with its LaTeX (`$...$` inline, `$$...$$` display) replaced by MathML made at build time; code left alone"
    from latex2mathml.converter import convert
    def one(m):
        tex, display = (m.group(1), "block") if m.group(1) is not None else (m.group(2), "inline")
        try: return convert(tex.strip(), display=display)
        except Exception as e:   # latex2mathml raises its own types; the build names the formula instead
            raise NotebookFailed(f"{where}: formula {m.group(0)[:80]!r} cannot be turned into MathML: {e}") from None
    out, last = [], 0
    for c in _CODE_SPAN.finditer(md):
        out += [_MATH.sub(one, md[last:c.start()]), c.group(0)]; last = c.end()
    return "".join(out + [_MATH.sub(one, md[last:])])

def render_body(nb)->str:
    "HTML of a processed notebook's cells (nbconvert's basic template, no prompts)"
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import TagRemovePreprocessor
    ex = HTMLExporter(template_name="basic", exclude_input_prompt=True, exclude_output_prompt=True)
    ex.register_preprocessor(TagRemovePreprocessor(remove_input_tags={"remove_input"}, enabled=True), enabled=True)
    body, _ = ex.from_notebook_node(nb)
    return body

_CSS = """
*{box-sizing:border-box} body{margin:0;font:15px/1.55 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2328}
nav.sidebar{position:fixed;top:0;left:0;bottom:0;width:260px;overflow-y:auto;background:#f6f8fa;border-right:1px solid #d0d7de;padding:16px}
nav.sidebar .brand{font-weight:700;font-size:20px;margin-bottom:8px;display:block;color:#1f2328;text-decoration:none}
nav.sidebar h4{margin:14px 0 4px;font-size:12px;text-transform:uppercase;color:#57606a;letter-spacing:.05em}
nav.sidebar ul{list-style:none;margin:0;padding:0} nav.sidebar li a{display:block;padding:3px 8px;border-radius:6px;color:#0969da;text-decoration:none}
nav.sidebar li a:hover{background:#eaeef2} nav.sidebar li a.current{background:#ddf4ff;font-weight:600}
main{margin-left:260px;padding:24px 40px;max-width:1100px}
a{color:#0969da} code{background:#eff1f3;padding:1px 4px;border-radius:4px;font-size:90%}
pre{background:#f6f8fa;border:1px solid #d0d7de;border-radius:6px;padding:10px;overflow-x:auto;font-size:13px;line-height:1.45}
pre code{background:none;padding:0} .cell{margin:10px 0} .input_area pre{margin:0}
.output_subarea pre{background:#fff;border-color:#eaeef2} .output_subarea img{max-width:100%} .prompt{display:none}
main table{border-collapse:collapse;margin:8px 0;font-size:13px}
main th,main td{border:1px solid #d0d7de;padding:4px 8px;text-align:left} main th{background:#f6f8fa}
.api-entry{border:1px solid #d0d7de;border-left:4px solid #0969da;border-radius:6px;padding:2px 14px;margin:16px 0;background:#fbfcfd}
.api-entry hr{display:none} .anchor-link{display:none} .output_stderr pre{background:#fff8e6}
.output_subarea{overflow-x:auto}
"""

_ICON = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#0969da"/><path d="M3 12V4l5 5 5-5v8" stroke="#fff" stroke-width="2" fill="none"/></svg>'

def _sidebar(pages:list, current:str)->str:
    here = posixpath.dirname(current)
    rel = lambda u: posixpath.relpath(u, here or ".")
    groups = [("Guides", "guide"), ("Library", "library"), ("Tutorials", "tutorial"), ("Jobs", "job")]
    out = [f'<a class="brand" href="{rel("index.html")}">mlcore</a><ul>'
           f'<li><a href="{rel("index.html")}"{" class=current" if current == "index.html" else ""}>Home</a></li>'
           f'<li><a href="{rel("reference.html")}"{" class=current" if current == "reference.html" else ""}>Symbol index</a></li></ul>']
    for label, kind in groups:
        items = [p for p in pages if p.kind == kind]
        if not items: continue
        out.append(f"<h4>{label}</h4><ul>")
        out += [f'<li><a href="{rel(p.url)}"{" class=current" if p.url == current else ""}>{html.escape(p.title)}</a></li>' for p in items]
        out.append("</ul>")
    return "\n".join(out)

def frame(title:str, body:str, pages:list, current:str, site_title:str="mlcore")->str:
    "A complete HTML page: sidebar with every page, then `body`"
    css = posixpath.relpath("assets/site.css", posixpath.dirname(current) or ".")
    icon = posixpath.relpath("assets/favicon.svg", posixpath.dirname(current) or ".")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{html.escape(title)} – {html.escape(site_title)}</title><link rel="stylesheet" href="{css}"><link rel="icon" href="{icon}" type="image/svg+xml"></head>\n'
            f'<body><nav class="sidebar">{_sidebar(pages, current)}</nav>\n<main>\n{body}\n</main></body></html>\n')

def render_page(nb, page:Page, pages:list, doc_prefix:str="")->str:
    "Full HTML of one executed notebook's page"
    from bs4 import BeautifulSoup
    nb = _tidy(nb)
    for c in nb.cells:
        if c.cell_type == "markdown": c.source = math_to_mathml(c.source, str(page.src))
    soup = BeautifulSoup(render_body(nb), "html.parser")
    _relink(soup, page.url, {str(p.src.with_suffix(".ipynb")).replace(os.sep, "/"): p.url for p in pages}, doc_prefix)
    _anchors(soup)
    return frame(page.title, str(soup), pages, page.url)

def index_page(pages:list, modidx:dict|None=None)->str:
    "HTML of the symbol index page: every public exported symbol linking to its entry"
    if modidx is None:
        from mlcore._modidx import d as modidx
    titles = {p.url: p.title for p in pages}
    out = ["<h1>Symbol index</h1><p>Every public name the library exports, by module, with its one-line docstring.</p>"]
    for mod in sorted(modidx["syms"]):
        entries = []
        for full, (loc, _) in sorted(modidx["syms"][mod].items()):
            name = full[len(mod)+1:]
            if any(part.startswith("_") for part in name.split(".")): continue
            obj = importlib.import_module(mod)
            for part in name.split("."): obj = getattr(obj, part, None)
            doc = ((getattr(obj, "__doc__", None) or "").strip().splitlines() or [""])[0]
            entries.append(f'<tr><td><a href="{html.escape(loc)}"><code>{html.escape(name)}</code></a></td><td>{html.escape(doc)}</td></tr>')
        if entries:
            page = modidx["syms"][mod] and next(iter(modidx["syms"][mod].values()))[0].partition("#")[0]
            out.append(f'<h2 id="{mod}"><code>{mod}</code> — <a href="{page}">{html.escape(titles.get(page, page))}</a></h2>'
                       f'<table><tr><th>name</th><th>what it is</th></tr>{"".join(entries)}</table>')
    return "\n".join(out)

def _key(path:Path, root:Path, mode:str)->str:
    h = hashlib.sha256(mode.encode())
    h.update(path.read_bytes())
    for p in sorted([*(root/"mlcore").rglob("*.py"), *(root/"params").rglob("*.yaml")]): h.update(str(p.relative_to(root)).encode() + p.read_bytes())
    return h.hexdigest()

def _api_only(cell)->bool:
    d, src = _directives(cell.source), cell.source
    return bool(d & {"export", "exporti", "exports", "exec_doc"}) or src.startswith(("show_doc(", "#| hide\nfrom nbdev.showdoc")) \
        or all(l.startswith(("import ", "from ")) or l.startswith("#") or not l.strip() for l in src.splitlines())

def _build_one(args):
    "Execute (or take from the cache) and render one page; runs in a worker process"
    page, nbs, root, pages, cache, mode, members, doc_prefix, store = args
    src = Path(nbs)/page.src
    nb = nbformat.read(src, as_version=4)
    cached = Path(cache)/(str(page.src) + ".json") if cache else None
    key = _key(src, Path(root), mode)
    if cached and cached.exists() and json.loads(cached.read_text()).get("key") == key:
        nb = nbformat.from_dict(json.loads(cached.read_text())["nb"])
    else:
        if page.kind == "library": add_api_cells(nb, members)
        if page.kind == "job":
            nb.cells.insert(1, _md_cell(parameters_markdown(src, Path(root)/"params")))
        if mode != "none":
            env = {"MLFLOW_TRACKING_URI": f"sqlite:///{store}/mlflow.db", "MLCORE_ARTIFACT_ROOT": f"{store}/artifacts",
                   "MLCORE_RUNS_DIR": f"{store}/runs", "MLCORE_HOME": str(root)}  # plots: the kernel's inline backend
            execute(nb, src.parent, env, only=_api_only if mode == "api" else None, name=str(page.src))
        if cached:
            cached.parent.mkdir(parents=True, exist_ok=True)
            cached.write_text(json.dumps({"key": key, "nb": nb}))
    return page.url, render_page(nb, page, pages, doc_prefix)

def build_site(out:str|Path="_docs",   # site folder (replaced when the build succeeds)
               root:str|Path|None=None,# project root (default: the one holding settings.ini)
               execute:str="all",      # 'all', 'api' (only what API entries need) or 'none'
               cache:str|Path|None=".tmp/docs/cache", # executed notebooks, reused while unchanged; None: no cache
               workers:int=2,          # notebooks executed at a time
               skip_kinds:tuple=(),    # page kinds not executed, e.g. ('tutorial', 'job') for a quick check
               full:tuple|None=None    # if given, only these pages (addresses) run fully; other pages run 'api'
              )->list:
    "Build the static documentation site from the notebooks; returns the pages"
    from mlcore.core.config import project_root
    if execute not in ("all", "api", "none"): raise ValueError(f"execute must be 'all', 'api' or 'none', got {execute!r}")
    root = Path(root).resolve() if root else project_root()
    cfg = ConfigParser(); cfg.read(root/"settings.ini"); c = cfg["DEFAULT"]
    nbs = root/c.get("nbs_path", "nbs")
    doc_prefix = c.get("doc_host", "").rstrip("/") + c.get("doc_baseurl", "").rstrip("/") + "/" if c.get("doc_host") else ""
    pages, members = discover(nbs), module_symbols()
    cache = (root/cache if not Path(cache).is_absolute() else Path(cache)) if cache else None
    out = root/out if not Path(out).is_absolute() else Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".docs-", dir=out.parent))
    store = Path(tempfile.mkdtemp(prefix="mlcore-docs-store-"))
    try:
        def mode(p):
            if p.kind in skip_kinds: return "none"
            return execute if full is None or p.url in full or execute == "none" else "api"
        jobs = [(p, nbs, root, pages, cache, mode(p), members.get(p.url, {}), doc_prefix, store) for p in pages]
        with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
            for url, text in pool.map(_build_one, jobs):
                (tmp/url).parent.mkdir(parents=True, exist_ok=True)
                (tmp/url).write_text(text)
        (tmp/"reference.html").write_text(frame("Symbol index", index_page(pages), pages, "reference.html"))
        (tmp/"assets").mkdir()
        from pygments.formatters import HtmlFormatter
        (tmp/"assets/favicon.svg").write_text(_ICON)
        (tmp/"assets/site.css").write_text(_CSS + HtmlFormatter(style="default").get_style_defs(".highlight"))
        if out.exists(): shutil.rmtree(out)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True); shutil.rmtree(store, ignore_errors=True)
    return pages

def serve(folder:str|Path="_docs", port:int=8000, host:str="127.0.0.1"):
    "Serve the built site on loopback until interrupted"
    if not (Path(folder)/"index.html").exists(): raise FileNotFoundError(f"{folder}/index.html not found; run `make docs` first")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    with http.server.ThreadingHTTPServer((host, port), handler) as srv:
        print(f"serving {folder} on http://{host}:{port}/ (Ctrl-C stops)", flush=True)
        try: srv.serve_forever()
        except KeyboardInterrupt: pass

def main(argv:list|None=None)->int:
    "`python tools/docs_site.py build|serve`"
    ap = argparse.ArgumentParser(prog="python tools/docs_site.py", description="Build or serve the documentation site")
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build the static site into --out")
    b.add_argument("--out", default="_docs"); b.add_argument("--execute", choices=["all", "api", "none"], default="all")
    b.add_argument("--no-cache", action="store_true"); b.add_argument("--workers", type=int, default=2)
    b.add_argument("--quick", action="store_true", help="do not execute tutorials and jobs (they run in the tests)")
    b.add_argument("--full", action="append", metavar="PAGE", help="run only these pages (e.g. drift.html) fully, others only for their API entries")
    b.add_argument("--no-quarto", action="store_true", help="build the HTML site even when quarto is installed")
    s = sub.add_parser("serve", help="serve the site on 127.0.0.1"); s.add_argument("--out", default="_docs")
    s.add_argument("--port", type=int, default=8000)
    a = ap.parse_args(argv)
    if a.cmd == "serve": serve(a.out, a.port); return 0
    if shutil.which("quarto") and not a.no_quarto:
        return subprocess.call([str(Path(sys.executable).with_name("nbdev_docs"))])
    try: pages = build_site(a.out, execute=a.execute, cache=None if a.no_cache else ".tmp/docs/cache", workers=a.workers,
                            skip_kinds=("tutorial", "job") if a.quick else (), full=tuple(a.full) if a.full else None)
    except NotebookFailed as e: print(f"docs build failed: {e}", file=sys.stderr); return 1
    print(f"built {len(pages) + 1} pages into {a.out}/ (open {a.out}/index.html, or `make docs-serve`)")
    return 0

if __name__ == "__main__": sys.exit(main())
