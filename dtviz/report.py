"""``export_report``: one self-contained HTML file with every figure, the model card and the settings.

plotly.js is inlined once (≈ 4.8 MB) and each figure is a JSON island drawn by one loop, so the file
opens offline and stays the size of plotly.js plus the figures. Each figure keeps the interactive mode
bar with two download buttons, PNG and SVG at 3× (a JavaScript config, which Streamlit cannot carry).
"""
from __future__ import annotations

import datetime as _dt
import html
import json
import os
from urllib.parse import urlsplit, urlunsplit

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from dtviz.errors import DtvizInputError

SHARE_KEYS = ("share_url", "url", "link")
ENV_BASE_URL = "DTVIZ_BASE_URL"  # the dashboard's public address, e.g. https://lab.example.org/dtviz
LOCAL_NOTE = ("This link works only on the machine that made this report (it points at {host}); "
              "to give reports a public link, start the dashboard with "
              "dtviz serve --base-url URL or set DTVIZ_BASE_URL.")

_STYLE = """
body { font-family: Arial, Helvetica, sans-serif; margin: 24px auto; max-width: 1200px; color: #222; }
h1 { font-size: 26px; margin-bottom: 4px; } h2 { font-size: 19px; margin: 32px 0 6px; }
.meta { color: #555; font-size: 13px; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 14px; }
th, td { border: 1px solid #ccc; padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; font-weight: 600; }
.dtviz-figure { width: 100%; min-height: 420px; }
nav a { margin-right: 14px; font-size: 14px; }
"""

# Two download buttons per figure: PNG and SVG (plotly's own button does one format per config).
_RENDER = """
(function () {
  function button(fmt, name) {
    var icon = fmt === 'svg' ? (Plotly.Icons['camera-retro'] || Plotly.Icons.camera) : Plotly.Icons.camera;
    return {name: 'Download ' + fmt.toUpperCase(), title: 'Download as ' + fmt.toUpperCase(), icon: icon,
            click: function (gd) { Plotly.downloadImage(gd, {format: fmt, filename: name, scale: 3}); }};
  }
  document.querySelectorAll('script.dtviz-figure-data').forEach(function (node) {
    var fig = JSON.parse(node.textContent);
    var name = node.getAttribute('data-name');
    var config = {displayModeBar: true, displaylogo: false, responsive: true,
                  modeBarButtonsToRemove: ['toImage', 'lasso2d', 'select2d', 'sendChartToCloud', 'sendDataToCloud', 'editInChartStudio'],
                  modeBarButtonsToAdd: [button('png', name), button('svg', name)]};
    Plotly.newPlot(node.getAttribute('data-target'), fig.data, fig.layout, config);
  });
})();
"""


# ------------------------------------------------------------------------------------ share link

def check_base_url(text: str) -> str:
    """A public base URL ("https://host[:port][/path]") without its trailing slash, or DtvizInputError."""
    parts = urlsplit(str(text).strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise DtvizInputError(f"a base URL must look like https://host/path, with no query; got {str(text)[:80]!r}.")
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def share_link(url: str, base_url: str | None = None, app_path: str = "") -> tuple[str, str]:
    """(href, note) for the dashboard address ``url`` of this view.

    With a public ``base_url`` (else env DTVIZ_BASE_URL) the view's page and query go onto it, less the
    server's own ``app_path`` (Streamlit's server.baseUrlPath). Without one, a link to this machine
    (localhost, 127.x, ::1, 0.0.0.0) is kept and the note says it works only here."""
    base = base_url if base_url is not None else os.environ.get(ENV_BASE_URL, "")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return "", ""  # not an address of a dashboard: no link at all
    if base:
        try:
            base = check_base_url(base)
        except DtvizInputError:
            base = ""  # a broken setting must not break the export: the local link and its note instead
    if base:
        path, prefix = parts.path, "/" + app_path.strip("/")
        if prefix != "/" and (path == prefix or path.startswith(prefix + "/")):
            path = path[len(prefix):]
        return urlunsplit(urlsplit(base)[:2] + (urlsplit(base).path + "/" + path.lstrip("/"), parts.query, "")), ""
    host = (parts.hostname or "").lower()
    if host in ("localhost", "::1", "0.0.0.0", "") or host.startswith("127."):
        return url, LOCAL_NOTE.format(host=parts.netloc or "this machine")
    return url, ""


# ---------------------------------------------------------------------------------------- report

def export_report(sections, model_card: dict, settings: dict, title: str = "dtviz report",
                  base_url: str | None = None, app_path: str = "") -> str:
    """The report as an HTML string (write it with ``open(path, "w", encoding="utf-8")``).

    ``sections``: ``(title, figure)`` pairs, or dicts with "title", "figure" and optionally "name" (the
    download file name). ``model_card`` and ``settings``: flat or nested dicts, shown as tables; a
    "share_url" (or "url") in ``settings`` becomes a link that reopens the dashboard on this view, on the
    public ``base_url`` when one is configured (see ``share_link``)."""
    items = [_section(s, k) for k, s in enumerate(sections)]
    settings = dict(settings or {})
    share = next((settings.pop(k) for k in SHARE_KEYS if settings.get(k)), None)
    now = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    from dtviz import __version__

    parts = [
        "<!DOCTYPE html>", "<html lang='en'><head><meta charset='utf-8'>",
        f"<title>{_esc(title)}</title><style>{_STYLE}</style>",
        f"<script type='text/javascript'>{get_plotlyjs()}</script>",  # once, for every figure
        "</head><body>",
        f"<h1>{_esc(title)}</h1>",
        f"<p class='meta'>Written {_esc(now)} by dtviz {_esc(__version__)} · {len(items)} figure(s)</p>",
    ]
    href, note = share_link(str(share), base_url, app_path) if share else ("", "")
    if href:
        parts.append(f"<p>Open this view in the dashboard: <a href='{_esc(href)}'>{_esc(href)}</a></p>")
        if note:
            parts.append(f"<p class='meta share-note'>{_esc(note)}</p>")
    if items:
        parts.append("<nav>" + "".join(f"<a href='#section-{k}'>{_esc(t)}</a>" for k, (t, _, _) in enumerate(items)) + "</nav>")
    parts += ["<h2>Model</h2>", _table(model_card or {}), "<h2>Settings</h2>", _table(settings)]
    for k, (sec_title, fig, name) in enumerate(items):
        parts += [
            f"<h2 id='section-{k}'>{_esc(sec_title)}</h2>",
            f"<div class='dtviz-figure' id='figure-{k}'></div>",
            # plotly's to_json escapes < > / so the JSON cannot close this script element early
            f"<script type='application/json' class='dtviz-figure-data' data-target='figure-{k}' "
            f"data-name='{_esc(name)}'>{fig.to_json()}</script>",
        ]
    parts += [f"<script type='text/javascript'>{_RENDER}</script>", "</body></html>"]
    return "\n".join(parts)


def _section(section, k: int) -> tuple[str, go.Figure, str]:
    if isinstance(section, dict):
        title, fig, name = section.get("title") or section.get("name") or f"Figure {k + 1}", section.get("figure"), section.get("name")
    else:
        try:
            title, fig = section
        except (TypeError, ValueError):
            raise DtvizInputError(f"report section {k + 1}: expected (title, figure) or a dict with 'figure'.") from None
        name = None
    if isinstance(fig, dict):
        fig = go.Figure(fig)
    if not isinstance(fig, go.Figure):
        raise DtvizInputError(f"report section {k + 1} ({title!r}): expected a plotly figure, got {type(fig).__name__}.")
    return str(title), fig, _file_name(name or title)


def _file_name(text: str) -> str:
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in str(text).lower()).strip("-")
    return safe or "dtviz-figure"


def _table(data: dict) -> str:
    rows = "".join(f"<tr><th>{_esc(k)}</th><td>{_cell(v)}</td></tr>" for k, v in _flatten(data))
    return f"<table>{rows}</table>" if rows else "<p class='meta'>(none)</p>"


def _flatten(data: dict, prefix: str = ""):
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            yield from _flatten(value, f"{name} · ")
        else:
            yield name, value


def _cell(value) -> str:
    if isinstance(value, float):
        return _esc(f"{value:.6g}")
    if isinstance(value, (list, tuple)):
        text = json.dumps(list(value), default=str)
        return _esc(text if len(text) <= 400 else text[:400] + " …")
    return _esc("" if value is None else value)


def _esc(value) -> str:
    return html.escape(str(value), quote=True)
