"""The HTML report: figures, Graphviz pictures with layouts and conversions marked, groups that
keep every drawing small, and a real browser that loads the page without console errors."""
import re
import shutil

import pytest

pytest.importorskip("graphviz", reason="the HTML report needs the graphviz package (test extra)")

import layoutopt  # noqa: E402
from layoutopt.errors import LayoutoptError  # noqa: E402
from layoutopt.report import html as report_html  # noqa: E402
from layoutopt.report.graph_view import GraphView, OpView  # noqa: E402
from layoutopt.zoo import build  # noqa: E402

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed "
                                                                   "(apt-get install graphviz)")


@pytest.fixture(scope="module")
def shufflenet():
    return layoutopt.optimize(*build("shufflenet_nano"), target="ethos-u55")


@needs_dot
def test_page_shows_the_figures_and_marks_every_conversion(shufflenet, tmp_path):
    path = tmp_path / "r.html"
    shufflenet.report.save_html(str(path))
    page = path.read_text()
    rep = shufflenet.report
    assert (rep.transposes_before, rep.transposes_after) == (25, 1)
    assert re.search(r"<td>transposes</td><td>25</td><td>1</td>", page)
    assert "carry_channel_order" in page and "max abs diff" in page
    after, before = page.split("Graph before")
    # one red-bordered node per converting op, in each picture; their bytes in the label
    converting_after = {c["node"] for c in rep.conversions_after}
    assert len(converting_after) == 1
    for name in converting_after:
        assert re.search(rf'<g id="{name}" class="node">.*?conversion', after, re.S), name
    assert after.count("conversion 8.0 KiB") == 0 and after.count("conversion 12.0 KiB") == 1
    assert before.count("<g id=") > after.count("conversion ")
    assert page.count("<svg") == 2  # one group each: the model fits one drawing


def view(n, modules):
    ops = []
    for i in range(n):
        module = modules[i % len(modules)]
        ops.append(OpView(f"n{i}", "add", (1, 4, 4, 4), "channels_last", module, (f"n{i - 1}",) if i else ()))
    return GraphView(ops)


def test_large_graphs_are_cut_along_module_paths_into_small_groups():
    modules = [("encoder", f"layer{j}", "block", str(k)) for j in range(12) for k in range(2)] + [()]
    big = view(3000, modules)
    groups = report_html.groups_of(big, limit=120)
    assert sum(len(g) for g in groups.values()) == 3000
    assert max(len(g) for g in groups.values()) <= 120
    assert len(groups["encoder.layer3.block.1"]) == 120 and len(groups["(model)"]) == 120


def test_a_module_too_big_to_cut_further_is_split_into_runs():
    groups = report_html.groups_of(view(300, [("head",)]), limit=120)
    assert {k: len(v) for k, v in groups.items()} == {"head [1]": 120, "head [2]": 120, "head [3]": 60}


@needs_dot
def test_a_3000_op_graph_renders(tmp_path):
    modules = [("encoder", f"layer{j}", "block", str(k)) for j in range(15) for k in range(2)]
    page = report_html._graph_section("Graph after", view(3000, modules), open_=True)
    assert page.count("<svg") == 31  # the overview and 30 groups of 100 ops


def test_missing_graphviz_is_one_clear_error(shufflenet, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(LayoutoptError, match="needs Graphviz's 'dot' program: apt-get install graphviz"):
        shufflenet.report.to_html()


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


@needs_dot
@pytest.mark.slow  # starts a real browser
@pytest.mark.skipif(_chromium() is None or shutil.which("chromedriver") is None,
                    reason="no headless browser (apt-get install chromium chromium-driver)")
def test_a_real_browser_loads_the_page_without_console_errors(shufflenet, tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium (test extra)")
    from selenium.webdriver.common.by import By

    path = tmp_path / "r.html"
    shufflenet.report.save_html(str(path))
    options = webdriver.ChromeOptions()
    options.binary_location = _chromium()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=webdriver.ChromeService(shutil.which("chromedriver")), options=options)
    try:
        driver.get(path.as_uri())
        summary = driver.find_element(By.ID, "summary").text
        assert "transposes 25 1" in summary and "lower bound bytes" in summary
        assert len(driver.find_elements(By.CSS_SELECTOR, "svg g.node")) > 60
        driver.execute_script("setAll(false)")
        assert not driver.find_element(By.CSS_SELECTOR, "details.graph").get_attribute("open")
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == []
    finally:
        driver.quit()
