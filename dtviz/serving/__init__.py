"""Serving: ``dtviz serve`` (the dashboard's launcher), the folders the server owner serves and what a
visitor may open in them (``roots``), and the byte-bounded array cache shared between visitors.

Imports: any wing but dtviz.cli; nothing below imports it.
"""
