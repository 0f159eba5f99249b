"""Do the dvc plots render offline? `dvc plots show` in a repository with results, then a real
headless browser (chromium, no network) loads the page: every Vega-Lite plot must have drawn
an SVG with marks, and every PNG entry must have loaded.

Run by hand after `make run`: .venv/bin/python benchmarks/offline_plots.py [--repo .] [--screenshot out.png]
(`--smoke`: one tiny plot through the same page, without DVC; what CI runs). Needs chromium
(Debian: apt-get install chromium); without it, only the page's sources are checked.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from prunebench.report.offline_plots import page

BROWSER = next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)


def remote_sources(html: str) -> list[str]:
    """Scripts or styles the page would fetch over the network."""
    return re.findall(r"<(?:script|link)[^>]+(?:src|href)\s*=\s*[\"'](https?://[^\"']+)", html)


def rendered(html_file: Path, screenshot: Path | None = None) -> tuple[int, int, list[int]]:
    """(vega plots, images, marks drawn per vega plot) once the browser has run the page's scripts."""
    flags = [
        BROWSER,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--virtual-time-budget=20000",
        "--proxy-server=127.0.0.1:9",
        "--window-size=1400,1000",
    ]  # a dead proxy: no network at all
    dom = subprocess.run(
        [*flags, "--dump-dom", html_file.as_uri()], capture_output=True, text=True, check=True, timeout=300
    ).stdout
    if screenshot is not None:
        subprocess.run(
            [*flags, f"--screenshot={screenshot}", html_file.as_uri()], capture_output=True, check=True, timeout=300
        )
    plots = re.split(r'<div id="', dom)[1:]
    marks = [
        len(re.findall(r"<(?:path|line|rect|text|symbol)\b", div))
        for div in plots
        if 'class="marks"' in div or "vegaEmbed" in div
    ]
    images = len(re.findall(r"<img\b", dom))
    return len(marks), images, marks


def check(html_file: Path, screenshot: Path | None = None) -> bool:
    html = html_file.read_text()
    remote = remote_sources(html)
    print(f"{html_file}: {len(html):,} bytes, remote scripts: {remote or 'none'}")
    if BROWSER is None:
        print("no chromium here: the page's sources were checked, not its rendering")
        return not remote
    vega, images, marks = rendered(html_file, screenshot)
    blank = sum(1 for m in marks if m < 5)
    print(f"{BROWSER}: {vega} Vega-Lite plots, {vega - blank} with marks drawn, {blank} blank; {images} images")
    print("marks per plot:", marks)
    return not remote and vega > 0 and blank == 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke", action="store_true", help="one tiny plot, no DVC (CI)")
    parser.add_argument("--repo", type=Path, default=Path("."))
    parser.add_argument("--screenshot", type=Path)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        if args.smoke:
            from dvc_render import VegaRenderer, render_html

            template = Path(tmp) / "page.html"
            template.write_text(page())
            points = [{"x": i, "y": i * i, "method": m} for i in range(5) for m in ("a", "b")]
            out = Path(render_html([VegaRenderer(points, "smoke", x="x", y="y")], Path(tmp) / "index.html", template))
        else:
            subprocess.run(["dvc", "plots", "show", "-o", tmp], cwd=args.repo, check=True, capture_output=True)
            out = Path(tmp) / "index.html"
        ok = check(out, args.screenshot)
    print("offline rendering:", "ok" if ok else "FAILED")
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
