"""dtviz dashboard: ``streamlit run app.py``.

The pages are listed explicitly (st.navigation), the sidebar with the model and the settings is shared
(pages/common.py), and every number comes from the ``dtviz`` library.
"""
import logging
import os
import sys

import streamlit as st

ROOT = os.path.dirname(os.path.abspath(__file__))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from dtviz.errors import DtvizInputError  # noqa: E402
import dtviz_app as common  # noqa: E402

st.set_page_config(page_title="dtviz — conditioning vectors of diffusion transformers", page_icon=":material/grain:",
                   layout="wide")

pages = {module: st.Page(os.path.join("pages", f"{module}_view.py"), title=title, url_path=url, icon=icon,
                         default=(module == "overview"))
         for module, title, url, _, icon in common.PAGES}
nav = st.navigation({"Views": [pages[m] for m, *_ in common.PAGES if m != "pruning"],
                     "Tools": [pages["pruning"]]}, expanded=True)
module = next(m for m, p in pages.items() if p.url_path == nav.url_path)
prefix = next(pfx for m, _, _, pfx, _ in common.PAGES if m == module)

ctx = common.sidebar()
common.set_ctx(ctx)
common.start_page(module)
try:
    nav.run()
except DtvizInputError as err:  # bad input inside a page: the library's sentence, never a traceback
    st.error(str(err))
except Exception as err:  # noqa: BLE001 — a bug must not take the other pages down
    if type(err).__module__.startswith("streamlit"):
        raise
    logging.getLogger("dtviz.app").exception("page %s failed", module)
    st.error(f"This view failed: {type(err).__name__}. The other pages keep working; details are in the server log.")
common.prune_url(prefix)
with st.sidebar:
    st.divider()
    common.export_buttons(ctx, nav.title)
