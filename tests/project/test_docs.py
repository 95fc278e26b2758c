"""The documentation site as a reader meets it: built from the notebooks, every page and symbol present,
no broken internal link, and a real browser (headless Chromium) renders pages without console errors."""
import base64, json, os, re, shutil, socket, subprocess, sys, tempfile, time, urllib.request
from pathlib import Path
from urllib.parse import urlparse, unquote
import pytest
from bs4 import BeautifulSoup
from conftest import ROOT

CHROMIUM = "/usr/bin/chromium"
SITE = ROOT/".tmp/docs/site"          # not _docs: the test never replaces a site the developer built
SHOTS = ROOT/".tmp/docs/screenshots"  # kept for a human to look at


@pytest.fixture(scope="module")
def site():
    "Build the site once. The notebook tests already run every notebook, so here tutorials and jobs are shown unexecuted and\n    only two library pages run in full (the others run what their API entries need): this keeps the test to about a minute"
    r = subprocess.run([sys.executable, "tools/docs_site.py", "build", "--quick", "--full", "data/datasets.html", "--full", "stats/drift.html",
                        "--out", str(SITE)], cwd=ROOT,
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    return SITE


def expected_url(nb: Path) -> str:
    "Page address a notebook must get, derived independently of tools/docs_site.py"
    rel = nb.relative_to(ROOT/"nbs")
    return str(rel.parent/(re.sub(r"^\d+[_-]", "", rel.stem) + ".html")).removeprefix("./")


def notebooks():
    return [p for p in sorted((ROOT/"nbs").rglob("*.ipynb"))
            if not any(part.startswith((".", "_")) for part in p.relative_to(ROOT/"nbs").parts)]


def soup(path: Path) -> BeautifulSoup: return BeautifulSoup(path.read_text(), "html.parser")


def test_every_notebook_has_a_page(site):
    home = soup(site/"index.html")
    sidebar = {a["href"] for a in home.select("nav.sidebar a")}
    for nb in notebooks():
        url = expected_url(nb)
        assert (site/url).exists(), f"{nb.relative_to(ROOT)} has no page {url}"
        if url != "index.html": assert url in sidebar, f"{url} missing from the sidebar"
    text = home.get_text()
    assert "Quick start" in text and "make test" in text  # the home page is index.ipynb


def public_symbols():
    from mlcore._modidx import d
    for mod, syms in d["syms"].items():
        for full, (loc, _) in syms.items():
            name = full[len(mod)+1:]
            if not any(p.startswith("_") for p in name.split(".")): yield mod, name, loc


def test_every_exported_symbol_has_an_entry(site):
    syms = list(public_symbols())
    assert len(syms) > 40
    pages, index = {}, soup(site/"reference.html")
    index_links = {a["href"] for a in index.find_all("a", href=True)}
    for mod, name, loc in syms:
        page, _, anchor = loc.partition("#")
        s = pages.setdefault(page, soup(site/page))
        el = s.find(id=anchor)
        assert el is not None, f"{mod}.{name}: no anchor #{anchor} on {page}"
        entry = el.find_parent(class_="api-entry")
        assert entry is not None and name in entry.get_text(), f"{mod}.{name}: anchor #{anchor} is not an API entry"
        assert entry.find("pre") is not None, f"{mod}.{name}: entry without a signature"
        assert loc in index_links, f"{mod}.{name} missing from the symbol index"


def test_methods_are_found_where_readers_look(site):
    "Methods are defined in their class or with @patch, so the index and the API pages list them (the main API)"
    index = soup(site/"reference.html").get_text()
    for name in ("CreditModel.score", "CreditModel.score_arrow", "CreditModel.spark_score", "CreditModel.contributions",
                 "AuditLog.verify", "AuditLog.champion_at", "StandaloneCluster.start"):
        assert name in index, f"{name} missing from the symbol index"
    scoring = soup(site/"models/credit.html")
    assert scoring.find(id="creditmodel.score") is not None and scoring.find(id="creditmodel.spark_score") is not None
    assert "_score" not in {a.get_text() for a in soup(site/"reference.html").find_all("code")}


def test_argument_comments_and_examples_are_rendered(site):
    drift = soup(site/"stats/drift.html")
    entry = drift.find(id="psi").find_parent(class_="api-entry")
    assert "counts per bin in the reference" in entry.get_text()  # docments comment of `expected`
    assert "Population stability index" in entry.get_text()
    assert drift.select(".output_area")  # executed examples have outputs
    assert not drift.find(string=re.compile(r"#\|\s*export"))  # directives and exported source are not shown
    frames = soup(site/"data/datasets.html").select(".output_area table.dataframe")
    assert frames and len(frames[0].find_all("tr")) > 3  # an executed example's DataFrame, rendered as a table


def test_job_page_documents_parameters(site):
    from mlcore.ops.runner import job_parameters
    for nb in sorted((ROOT/"nbs/jobs").glob("*.ipynb")):
        page = soup(site/expected_url(nb))
        rows = {tr.find("td").get_text(strip=True): [td.get_text(strip=True) for td in tr.find_all("td")]
                for tr in page.select("table tr") if tr.find("td")}
        for p in job_parameters(nb).values():
            assert p.name in rows, f"{nb.name}: parameter {p.name} not documented"
            assert rows[p.name][1:3] == [p.type, p.default], rows[p.name]


def test_no_broken_internal_links(site):
    ids, checked = {}, 0
    def ids_of(path):
        if path not in ids: ids[path] = {e["id"] for e in soup(path).find_all(id=True)}
        return ids[path]
    for page in site.rglob("*.html"):
        for tag, attr in (("a", "href"), ("link", "href"), ("img", "src"), ("script", "src")):
            for el in soup(page).find_all(tag, **{attr: True}):
                ref = el[attr]
                u = urlparse(ref)
                if u.scheme or ref.startswith("//"): continue  # external, data: and mailto: links
                target = page if not u.path else (page.parent/unquote(u.path)).resolve()
                assert target.is_file() and site.resolve() in [target, *target.parents], \
                    f"{page.relative_to(site)}: broken link {ref}"
                if u.fragment and target.suffix == ".html":
                    assert unquote(u.fragment) in ids_of(target), f"{page.relative_to(site)}: no anchor for {ref}"
                checked += 1
    assert checked > 200, checked


# --- a real browser -------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


class Browser:
    "Headless Chromium driven over the DevTools protocol; collects console errors and exceptions per page"
    def __init__(self):
        import websocket
        self.profile = tempfile.mkdtemp(prefix="chromium-")
        self.proc = subprocess.Popen([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                                      "--disable-background-networking", "--disable-component-update", "--disable-sync",
                                      f"--user-data-dir={self.profile}", "--remote-debugging-address=127.0.0.1",
                                      "--remote-debugging-port=0", "--window-size=1280,1400", "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file, deadline = Path(self.profile)/"DevToolsActivePort", time.monotonic() + 60
        while not port_file.exists() or not port_file.read_text().strip():
            assert time.monotonic() < deadline and self.proc.poll() is None, "chromium did not start"
            time.sleep(0.2)
        port = port_file.read_text().split()[0]
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10))
        page = next(t for t in targets if t["type"] == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=60, suppress_origin=True)
        self.n, self.events = 0, []
        for m in ("Runtime.enable", "Log.enable", "Page.enable"): self.call(m)

    def call(self, method, **params):
        self.n += 1
        self.ws.send(json.dumps({"id": self.n, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.n:
                assert "error" not in msg, msg
                return msg.get("result", {})
            self.events.append(msg)

    def visit(self, url, shot=None):
        "Load `url`; returns (console errors, facts about the page); saves a screenshot to `shot`"
        self.events = []
        self.call("Page.navigate", url=url)
        deadline = time.monotonic() + 60
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events):
            assert time.monotonic() < deadline, f"{url} did not load"
            self.events.append(json.loads(self.ws.recv()))
        time.sleep(0.5)
        facts = self.call("Runtime.evaluate", returnByValue=True, expression="""({
            links: document.querySelectorAll('nav.sidebar a').length,
            text: document.querySelector('main') ? document.querySelector('main').innerText.length : 0,
            entries: document.querySelectorAll('.api-entry').length,
            brokenImages: Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).length,
            cssRules: Array.from(document.styleSheets).reduce((n, s) => n + s.cssRules.length, 0),
            latexSource: (document.querySelector('main') || document.body).innerText.includes('$$'),
            mathShown: Array.from(document.querySelectorAll('math')).filter(m => {
                const r = m.getBoundingClientRect(); return r.width > 0 && r.height > 0}).length})""")["result"]["value"]
        if shot:
            png = self.call("Page.captureScreenshot", format="png")["data"]
            Path(shot).write_bytes(base64.b64decode(png))
        errors = []
        for e in self.events:
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.exceptionThrown": errors.append(p["exceptionDetails"].get("exception", {}).get("description") or p["exceptionDetails"]["text"])
            elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                errors.append(" ".join(str(a.get("value", a.get("description"))) for a in p.get("args", [])))
            elif m == "Log.entryAdded" and p["entry"]["level"] == "error": errors.append(p["entry"]["text"] + " " + p["entry"].get("url", ""))
        return errors, facts

    def close(self):
        try: self.ws.close()
        finally:
            self.proc.terminate()
            try: self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired: self.proc.kill(); self.proc.wait()
            shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture(scope="module")
def served(site):
    "The site served by `python tools/docs_site.py serve` on loopback, as `make docs-serve` does"
    if not Path(CHROMIUM).exists():
        pytest.skip("headless browser check needs Chromium at /usr/bin/chromium (Debian: apt-get install -y chromium)")
    port = free_port()
    srv = subprocess.Popen([sys.executable, "tools/docs_site.py", "serve", "--out", str(site), "--port", str(port)], cwd=ROOT,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try: urllib.request.urlopen(base + "/index.html", timeout=2); break
        except OSError:
            assert time.monotonic() < deadline and srv.poll() is None, "docs server did not start"
            time.sleep(0.2)
    yield base
    srv.terminate(); srv.wait(timeout=20)


@pytest.fixture(scope="module")
def browser(served):
    b = Browser()
    yield b
    b.close()


def test_browser_renders_home_and_api_pages(served, browser):
    SHOTS.mkdir(parents=True, exist_ok=True)
    for page, min_entries in (("index.html", 0), ("stats/drift.html", 4), ("jobs/train.html", 0)):
        shot = SHOTS/(page.replace("/", "_").replace(".html", ".png"))
        errors, facts = browser.visit(f"{served}/{page}", shot)
        assert errors == [], f"{page}: console errors {errors}"
        assert facts["links"] >= len(notebooks()) and facts["text"] > 1000 and facts["cssRules"] > 20, facts
        assert facts["entries"] >= min_entries and facts["brokenImages"] == 0, facts
        assert shot.stat().st_size > 20_000  # a blank page compresses to a few kB


def test_browser_check_catches_console_errors(served, browser, site):
    "The console check can fail: a page with a script error and a missing resource is reported"
    bad = site/"_broken_check.html"
    bad.write_text('<html><body><img src="missing.png"><script>console.error("boom"); undefinedFunction();</script></body></html>')
    try:
        errors, _ = browser.visit(f"{served}/_broken_check.html")
    finally: bad.unlink()
    text = " ".join(errors)
    assert "boom" in text and "undefinedFunction" in text and "404" in text, errors


def test_formulas_render_offline(served, browser):
    "Formulas are MathML made at build time: the browser shows them (non-zero size) and no LaTeX source is left in the text"
    for page in ("models/binning.html", "stats/drift.html"):
        errors, facts = browser.visit(f"{served}/{page}", SHOTS/(page.replace("/", "_").replace(".html", "_math.png")))
        assert errors == [] and not facts["latexSource"] and facts["mathShown"] > 0, (page, facts)
