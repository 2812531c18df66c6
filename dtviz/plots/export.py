"""Downloads of any figure: the mode-bar config (PNG/SVG at 3×) and the data behind it as a table or CSV.
UI-free; no paper figure of its own — every view's figure goes through these for its downloads.

    figure_config                                                          camera button: format, file name, scale
    figure_frame, figure_csv                                               the figure's data as a table / CSV text
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dtviz.errors import DtvizInputError


# ============================================================================================ downloads

def figure_config(filename: str, fmt: str = "png", scale: int = 3) -> dict:
    """The plotly / ``st.plotly_chart`` config: mode bar always shown, the camera button downloads
    ``fmt`` ("png", "svg", "jpeg" or "webp") at ``scale``× as ``filename``.

    plotly's mode bar has one download button with one format per config; a second, custom button needs
    a JavaScript click handler, which a JSON config (Streamlit) cannot carry. So the page offers the
    format as a switch (``figure_config(name, fmt="svg")``); the HTML report (``dtviz.report``) writes
    its config in JavaScript and has both buttons."""
    fmt = fmt.lower()
    if fmt not in ("png", "svg", "jpeg", "webp"):
        raise DtvizInputError(f"download format must be png, svg, jpeg or webp; got {fmt!r}.")
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in str(filename)) or "dtviz-figure"
    return {
        "displayModeBar": True,
        "displaylogo": False,
        "responsive": True,
        "toImageButtonOptions": {"format": fmt, "filename": safe, "scale": max(2, int(scale))},
        "modeBarButtonsToRemove": ["lasso2d", "select2d", "sendChartToCloud", "sendDataToCloud", "editInChartStudio"],
    }


def figure_frame(fig: go.Figure) -> pd.DataFrame:
    """The data behind a figure, one table: a column per field (x, y, z, text, customdata) and a row per
    point (heatmaps in long form: row, column, value), with the trace name. Helper traces (the colour-bar
    point, the heatmap image) are left out; the image heatmap's CSV is ``cosine_frame``."""
    frames = []
    for k, tr in enumerate(fig.data):
        name = tr.name if tr.name is not None else f"trace {k}"
        if tr.type == "image" or name == "colour bar":
            continue
        if tr.type == "heatmap":
            z = np.asarray(tr.z, dtype=np.float64)
            ys = list(tr.y) if tr.y is not None else list(range(z.shape[0]))
            xs = list(tr.x) if tr.x is not None else list(range(z.shape[1]))
            rows, cols = np.meshgrid(np.arange(z.shape[0]), np.arange(z.shape[1]), indexing="ij")
            frames.append(pd.DataFrame({"trace": name, "row": [ys[i] for i in rows.ravel()],
                                        "column": [xs[j] for j in cols.ravel()], "value": z.ravel()}))
            continue
        cols = {}
        for field in ("x", "y", "text", "customdata"):
            val = getattr(tr, field, None)
            if val is None or isinstance(val, str):
                continue
            arr = np.asarray(val, dtype=object)
            if arr.ndim == 2:
                for j in range(arr.shape[1]):
                    cols[f"{field}_{j}"] = arr[:, j]
            else:
                cols[field] = arr.reshape(-1)
        if not cols:
            continue
        length = max(len(v) for v in cols.values())
        cols = {key: v for key, v in cols.items() if len(v) == length}
        df = pd.DataFrame(cols)
        df.insert(0, "trace", name)
        if getattr(tr, "xaxis", None) and tr.xaxis not in ("x", "x1"):
            df.insert(1, "panel", tr.xaxis)
        frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def figure_csv(fig: go.Figure) -> str:
    """``figure_frame(fig)`` as CSV text (for a download button)."""
    return figure_frame(fig).to_csv(index=False)
