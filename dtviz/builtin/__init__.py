"""The built-in model: the glyph data it is trained on (``glyphs``), the classifier and template matcher
that read its samples (``classifier``, ``templates``; the evaluation read-outs use them, so they import
nothing above dtviz.models), its training (``train``) and its model card (``card``, which measures every
number the card states and may use any wing below the command line).
"""
