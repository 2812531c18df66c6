"""Renders one plotly figure to PNG / SVG / PDF bytes in a process of its own (dtviz.plots.gallery.render_static).

    python -m dtviz.plots.render_worker FORMAT WIDTH HEIGHT SCALE  < figure.json  > image bytes

kaleido drives the machine's Chromium; when that hangs (a known kaleido failure: plotly/Kaleido#134, #145), the
parent kills this process group after its timeout instead of waiting forever.
"""
from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    import plotly.io as pio

    fmt, width, height, scale = argv[0], int(argv[1]), int(argv[2]), float(argv[3])
    fig = pio.from_json(sys.stdin.read(), skip_invalid=True)
    data = fig.to_image(format=fmt, width=width, height=height, scale=scale)
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
