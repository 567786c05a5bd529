"""Charts for documents (the exported report): inline SVG drawn by plotly's own renderer (Kaleido, driving the
Chromium already on the machine), so a report is a few hundred kilobytes that prints as drawn, with no toolbar and
nothing fetched. Where Kaleido or a Chromium is missing, the charts fall back to interactive plotly with plotly.js
inlined once (about 4.6 MB), still fetching nothing; the report says which it holds.
"""

from __future__ import annotations

import asyncio
import base64
import html
import logging

import plotly.graph_objects as go

SVG_WIDTH, SVG_HEIGHT = 900, 480  # pixels: fits an A4 page at print scale with the legend above the plot
PNG_SCALE = 2  # PNG charts (the PDF) at twice the pixels: sharp when printed


async def _draw(figures: list[go.Figure], image_format: str = "svg") -> list[bytes]:
    import kaleido

    # One browser for every figure; plotly.js from the installed plotly package and no MathJax, whose default
    # source is a public CDN: drawing a report must not reach outside the machine.
    page = kaleido.PageGenerator(mathjax=False)
    options = {"format": image_format, "width": SVG_WIDTH, "height": SVG_HEIGHT}
    if image_format == "png":
        options["scale"] = PNG_SCALE
    async with kaleido.Kaleido(n=1, page_generator=page) as renderer:
        return [await renderer.calc_fig(figure, opts=options) for figure in figures]


def embed_figures(figures: list[go.Figure], image_format: str = "svg") -> tuple[str, str]:
    """(HTML holding every figure, "svg", "png" or "interactive"): static SVG (or, for a PDF, PNG images) when it
    can be drawn here."""
    if not figures:
        return "", image_format
    try:
        drawn = asyncio.run(_draw(figures, image_format))
    except Exception as exc:  # noqa: BLE001 - Kaleido raises several kinds (no Chromium, browser crash, import)
        logging.getLogger(__name__).info("static charts unavailable (%s): embedding plotly.js instead", exc)
        interactive = "".join(figure.to_html(full_html=False, include_plotlyjs=(index == 0), default_width="100%",
                                             config={"displaylogo": False})
                              for index, figure in enumerate(figures))
        return interactive, "interactive"
    titles = [html.escape(str(figure.layout.title.text or "chart")) for figure in figures]
    if image_format == "png":  # images in a printed PDF (a PDF reader lists them; vector SVG would not be one)
        return "".join(f'<figure class="chart"><img alt="{title}" width="{SVG_WIDTH}" src="data:image/png;base64,'
                       f'{base64.b64encode(png).decode("ascii")}"></figure>' for title, png in zip(titles, drawn)), "png"
    return "".join(f'<figure class="chart" role="img" aria-label="{title}">{svg.decode("utf-8")}</figure>'
                   for title, svg in zip(titles, drawn)), "svg"
