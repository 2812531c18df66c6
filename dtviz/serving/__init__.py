"""Serving: ``dtviz serve`` (the dashboard's launcher), the folders the server owner serves and what a
visitor may open in them (``roots``), the byte-bounded array cache shared between visitors, and ``local``: a
dashboard on this machine for the scripts, benchmarks and browser tests that drive it (port, health, Chromium).

Imports: any wing but dtviz.cli; nothing below imports it.
"""
