"""Charts for documents (the exported report): inline SVG drawn by plotly's own renderer (Kaleido, driving the
Chromium already on the machine), so a report is a few hundred kilobytes that prints as drawn, with no toolbar and
nothing fetched. Where Kaleido or a Chromium is missing, the charts fall back to interactive plotly with plotly.js
inlined once (about 4.6 MB), still fetching nothing; the report says which it holds.
"""

from __future__ import annotations

import asyncio
import html
import logging

import plotly.graph_objects as go

SVG_WIDTH, SVG_HEIGHT = 900, 480  # pixels: fits an A4 page at print scale with the legend above the plot


async def _draw(figures: list[go.Figure]) -> list[str]:
    import kaleido

    # One browser for every figure; plotly.js from the installed plotly package and no MathJax, whose default
    # source is a public CDN: drawing a report must not reach outside the machine.
    page = kaleido.PageGenerator(mathjax=False)
    options = {"format": "svg", "width": SVG_WIDTH, "height": SVG_HEIGHT}
    async with kaleido.Kaleido(n=1, page_generator=page) as renderer:
        return [(await renderer.calc_fig(figure, opts=options)).decode("utf-8") for figure in figures]


def embed_figures(figures: list[go.Figure]) -> tuple[str, str]:
    """(HTML holding every figure, "svg" or "interactive"): static SVG when it can be drawn here."""
    if not figures:
        return "", "svg"
    try:
        drawn = asyncio.run(_draw(figures))
    except Exception as exc:  # noqa: BLE001 - Kaleido raises several kinds (no Chromium, browser crash, import)
        logging.getLogger(__name__).info("static charts unavailable (%s): embedding plotly.js instead", exc)
        interactive = "".join(figure.to_html(full_html=False, include_plotlyjs=(index == 0), default_width="100%",
                                             config={"displaylogo": False})
                              for index, figure in enumerate(figures))
        return interactive, "interactive"
    titles = [html.escape(str(figure.layout.title.text or "chart")) for figure in figures]
    return "".join(f'<figure class="chart" role="img" aria-label="{title}">{svg}</figure>'
                   for title, svg in zip(titles, drawn)), "svg"
