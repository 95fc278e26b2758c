"""The docs-site builder (tools/docs_site.py, project tooling outside the runtime package): pages, execution, API entries,
job parameters, rendering and the symbol index, each on a small example; tests/project/test_docs.py builds and browses the real site."""
import base64, io, sys
from pathlib import Path
import nbformat
import pytest
from conftest import ROOT

sys.path.insert(0, str(ROOT / "tools"))
import docs_site as site  # noqa: E402

NBS = ROOT / "nbs"


def test_page_addresses_follow_nbdev():
    assert site.page_url("25_drift.ipynb") == "drift.html"
    assert site.page_url("index.ipynb") == "index.html"
    assert site.page_url("jobs/train.ipynb") == "jobs/train.html"
    assert site.page_url("tutorials/01_end_to_end.ipynb") == "tutorials/end_to_end.html"
    assert site.page_url("stats/25_drift.ipynb") == "stats/drift.html"


def test_every_notebook_gets_a_page_home_first():
    pages = site.discover(NBS)
    assert (pages[0].url, pages[0].kind) == ("index.html", "home")
    pg = {p.url: p for p in pages}
    assert (pg["stats/drift.html"].kind, pg["stats/drift.html"].title) == ("library", "Drift statistics")
    assert pg["jobs/train.html"].kind == "job"
    assert pg["workflows/train.html"].kind == "library"
    n = len(list(NBS.rglob("*.ipynb"))) - len([p for p in NBS.rglob("*.ipynb") if any(x.startswith((".", "_")) for x in p.relative_to(NBS).parts)])
    assert len(pages) == n


def test_directives_are_read_from_the_top_of_a_cell():
    assert site._directives("#| export\n#| notest\nx = 1") == {"export", "notest"}
    assert site._directives("x = 1  #| export") == set()
    assert site._directives("#| eval: false\nx") == {"eval:false"}


def test_execution_keeps_outputs_skips_notest_and_names_a_failure():
    demo = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 6*7\nx"),
                                           nbformat.v4.new_code_cell("#| notest\nimport time; time.sleep(600)"),
                                           nbformat.v4.new_code_cell("print(x + 1)")])
    site.execute(demo, cwd=".", name="demo")
    assert demo.cells[0].outputs[0]["data"]["text/plain"] == "42"
    assert demo.cells[1].outputs == []
    assert demo.cells[2].outputs[0]["text"] == "43\n"
    bad = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1/0")])
    with pytest.raises(site.NotebookFailed, match="bad.ipynb: cell 0 failed"): site.execute(bad, cwd=".", name="bad.ipynb")


def test_api_entries_for_public_symbols_and_members():
    syms = site.module_symbols()
    assert syms["stats/drift.html"]["psi"] == "psi"
    assert syms["ops/runner.html"]["JobParam.value"] == "jobparam.value"
    assert "_cmd_run" not in syms["commands/main.html"]  # private helpers have no entry
    toy = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("#| export\nclass A:\n    'An A'\n    @property\n    def size(self)->int: 'How big'; return 1\n"
                                  "def f(x:int # a number\n     )->int:\n    'Twice x'\n    return 2*x\ndef _g(): pass")])
    site.add_api_cells(toy, {"A": "a", "A.size": "a.size", "f": "f"})
    assert [c.source for c in toy.cells[2:]] == ["show_doc(f)", "show_doc(A)", "show_doc(A.size)"]  # nbdev: last to first


def test_job_pages_start_with_their_parameters():
    md = site.parameters_markdown(NBS / "jobs/train.ipynb", ROOT / "params")
    assert "| `test_size` | `float` | `0.3` | share of applicants held out for testing" in md, md
    assert "mlcore run train -f params/credit_pd/train.yaml" in md


def test_rendering_drops_exported_code_and_rewrites_links():
    pages = site.discover(NBS)
    nbp = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# Toy\n\nSee [the runner](ops/75_runner.ipynb) and [train](jobs/train.ipynb)."),
        nbformat.v4.new_code_cell("#| export\ndef f(): pass"),
        nbformat.v4.new_code_cell("show_doc(Toy.size)", outputs=[nbformat.v4.new_output("display_data", {"text/markdown": "---\n\n### Toy.size\n\n*How big*"})]),
        nbformat.v4.new_code_cell("print(greeting)", outputs=[nbformat.v4.new_output("stream", name="stdout", text="hello, reader")])])
    out = site.render_page(nbp, site.Page(Path("50_toy.ipynb"), "library", "toy.html", "Toy"), pages)
    assert 'href="ops/runner.html"' in out and 'href="jobs/train.html"' in out, out
    assert "def f()" not in out and "hello, reader" in out
    assert "show_doc(" not in out and '<a class="api-anchor" id="toy.size">' in out and "How big" in out


def test_plots_travel_inside_the_page():
    import matplotlib
    matplotlib.use("agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(3, 2)); ax.plot([0, 1, 2], [0, 1, 4]); buf = io.BytesIO(); fig.savefig(buf, format="png"); plt.close(fig)
    png = base64.b64encode(buf.getvalue()).decode()
    nbi = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("plot()", outputs=[
        nbformat.v4.new_output("display_data", {"image/png": png, "text/plain": "<Figure>"})])])
    out = site.render_page(nbi, site.Page(Path("51_plot.ipynb"), "library", "plot.html", "Plot"), site.discover(NBS))
    assert f'src="data:image/png;base64,{png[:40]}' in out


def test_symbol_index_links_every_public_symbol():
    ix = site.index_page(site.discover(NBS))
    assert '<a href="stats/drift.html#psi"><code>psi</code></a>' in ix
    assert "Population stability index" in ix


def test_build_refuses_an_unknown_execute_mode():
    with pytest.raises(ValueError, match="execute must be 'all', 'api' or 'none'"): site.build_site(execute="some")


def test_latex_becomes_mathml_at_build_time():
    md = r"WoE: $$\mathrm{WoE}_i = \ln\frac{g_i/G}{b_i/B}$$ per bin $i$; code `$x$` and prices $5 and $10 stay as written."
    out = site.math_to_mathml(md, "toy.ipynb")
    assert out.count("<math") == 2 and 'display="block"' in out and 'display="inline"' in out and "$$" not in out
    assert "`$x$`" in out and "$5 and $10" in out
    with pytest.raises(site.NotebookFailed, match=r"toy.ipynb: formula .* cannot be turned into MathML"):
        site.math_to_mathml(r"a $\left(x$ b", "toy.ipynb")   # no \right
