"""The HTML page `dvc plots show` / `dvc plots diff` fill, with vega, vega-lite and vega-embed
inlined, so the plots render with no network (DVC's own page loads them from a CDN).

`make install` writes it (`python -m prunebench.report.offline_plots`) to the path `.dvc/config` names
(`plots.html_template`); the bundle comes from vl-convert, a pinned dependency. Plots are drawn
as SVG, so a headless browser can check that every plot has marks (benchmarks/offline_plots.py).
"""

from __future__ import annotations

from prunebench.files import write_text
from prunebench.paths import PLOTS_TEMPLATE

# vega-embed as DVC's pages call it, drawing SVG; vega and vega-lite on the page too
SNIPPET = """
window.vegaEmbed = (el, spec, opts) => vegaEmbed(el, spec, Object.assign({renderer: "svg"}, opts));
window.vega = vega;
window.vegaLite = vegaLite;
"""

PAGE = """<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<title>prunebench plots</title>
<script type="text/javascript">{bundle}</script>
<style>body {{ font-family: sans-serif; }} table {{ border-spacing: 15px; }}</style>
</head>
<body>
{{plot_divs}}
</body>
</html>
"""


def page() -> str:
    import vl_convert

    return PAGE.format(bundle=vl_convert.javascript_bundle(SNIPPET))


if __name__ == "__main__":
    write_text(PLOTS_TEMPLATE, page())
    print(f"{PLOTS_TEMPLATE}: dvc plots render offline")
