"""The sidebar's step slider for a captured trajectory file (dtviz.sources.trajectory): it replaces the
timestep slider, lives in the URL under ``step`` (0 = t0, the first sampling step, is the default and
is left out of the link), and returns the step as the source's "t"."""
from __future__ import annotations

import streamlit as st

from dtviz_app.urlstate import bound, int_in, url_store


def step_widgets(src) -> float:
    """Step k of ``src`` (a TrajectorySource) chosen in the sidebar -> float(k), what ``src.embeddings(t=...)`` takes."""
    url_store("t", None, None)  # not part of this view
    last = src.steps - 1
    if last == 0:
        if "step" in st.query_params:
            del st.query_params["step"]
        st.caption(f"Step: {src.step_text(0)} — the trajectory holds one step.")
        return 0.0
    step = bound(st.slider, "step", 0, parse=int_in(0, last), label="Step", min_value=0, max_value=last, step=1,
                 help="The sampling step of the captured trajectory at which every view reads c; 0 = t0, the first "
                      "step. The Dynamics page plots every step.")
    st.caption(f"{src.step_text(step)}; step 0 = t0, the first sampling step")
    return float(step)
