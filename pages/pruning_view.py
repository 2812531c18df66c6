"""Live pruning — placeholder: the pruning engine and its page are another issue."""
import streamlit as st

import dtviz_app as common

ctx = common.get_ctx()
st.title("Live pruning")
if ctx is not None:
    st.caption(ctx.title_context)
st.info("Coming soon: this page is being built in a separate piece of work.", icon=":material/construction:")
st.markdown(
    """
This page will make the paper's section 5 (Table 2, Figs. 7, 8, 10) interactive:

- **Prune c while sampling**: zero the tail dimensions (|c̄ᵢ| < τ) or the head dimensions of the conditioning
  vector at every step, only at t0, or during the last k steps, and regenerate samples of the chosen classes
  when the τ slider is released.
- **Side by side**: the unpruned and pruned samples with the number of removed dimensions, and the built-in
  classifier's accuracy on both.
- **Sweeps**: the `dtviz sweep` command line runs the same pruning over a grid of τ offline, for FID-style
  measurements at scale.

The sidebar settings (model, t, part, τ or top-k) already apply here and will drive the pruning.
Meanwhile, the **Magnitudes** and **Head vs tail projection** pages show what a given τ keeps and removes.
"""
)
