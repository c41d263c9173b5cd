"""How long the HTML report takes to draw, on real graphs up to a few thousand nodes.

    python bench/report_pages.py [--models ...] [--screenshot docs/report.png] [--json bench/out/report_pages.json]

Per model: nodes, groups drawn, seconds to optimize, seconds to render the page (Graphviz
runs once per group), page size. With --screenshot, headless Chromium photographs the first
model's page (the picture in the README).
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings

sys.path.insert(0, os.path.dirname(__file__))
from common import write_json  # noqa: E402

import layoutopt  # noqa: E402
from layoutopt.report.html import groups_of  # noqa: E402
from layoutopt.zoo import build  # noqa: E402
from layoutopt.zoo.public import hf  # noqa: E402

MODELS = {
    "shufflenet_nano": lambda: build("shufflenet_nano"),
    "hf_mobilevit_small": lambda: build("hf_mobilevit_small"),
    # a deep ViT: 128 encoder layers of a narrow model, about 3,000 nodes
    "hf_vit_128_layers": hf("ViTConfig", "ViTModel", (1, 3, 32, 32), hidden_size=32, num_hidden_layers=128,
                            num_attention_heads=2, intermediate_size=64, image_size=32, patch_size=8),
}


def screenshot(page: str, png: str) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        raise SystemExit("no Chromium for the screenshot: apt-get install chromium")
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--screenshot={os.path.abspath(png)}", "--window-size=1100,1500", f"file://{page}"],
                   check=True, capture_output=True, timeout=120)
    print(f"wrote {png}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--target", default="ethos-u55")
    p.add_argument("--screenshot", help="PNG of the first model's page, taken by headless Chromium")
    p.add_argument("--json", default=os.path.join(os.path.dirname(__file__), "out", "report_pages.json"))
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, name in enumerate(args.models.split(",")):
            model, inputs = MODELS[name]()
            start = time.perf_counter()
            result = layoutopt.optimize(model, inputs, target=args.target)
            optimize_s = time.perf_counter() - start
            page = os.path.join(tmp, f"{name}.html")
            start = time.perf_counter()
            result.report.save_html(page)
            render_s = time.perf_counter() - start
            rep = result.report
            rows.append({"model": name, "nodes": rep.nodes, "groups": len(groups_of(rep.graph_after)),
                         "optimize_s": round(optimize_s, 2), "html_s": round(render_s, 2),
                         "html_kib": round(os.path.getsize(page) / 1024)})
            print(f"{name:22s} {rep.nodes:6d} nodes {rows[-1]['groups']:4d} groups  optimize {optimize_s:7.1f} s"
                  f"  html {render_s:5.2f} s  {rows[-1]['html_kib']:6d} KiB", flush=True)
            if i == 0 and args.screenshot:
                screenshot(page, args.screenshot)
    write_json(rows, args.json)


if __name__ == "__main__":
    main()
