"""dtviz dashboard: ``streamlit run app.py``.

The pages are listed explicitly (st.navigation), the sidebar with the model and the settings is shared
(the dtviz_app package), and every number comes from the ``dtviz`` library.
"""
import os
import sys

# before torch loads (OpenMP reads it once): see dtviz.models.device.interactive_threads
PASSIVE = "torch" not in sys.modules and os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE").upper() == "PASSIVE"

import streamlit as st  # noqa: E402
import torch  # noqa: E402

ROOT = os.path.dirname(os.path.abspath(__file__))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from dtviz.models.device import interactive_threads  # noqa: E402
from dtviz.errors import DtvizInputError  # noqa: E402
import dtviz_app as common  # noqa: E402
from dtviz_app.access import install_read_policy, show_bug  # noqa: E402

install_read_policy()  # every file a loader opens for a visitor lies in the served folders (dtviz.sources.access)

if not torch.cuda.is_available():
    # Sampling on CPU (the live pruning page): every core, waiting passively (interactive_threads says why)
    torch.set_num_threads(interactive_threads(passive=PASSIVE))

# the icon ships with dtviz: a material icon as page icon makes every visitor's browser fetch it from a font host
st.set_page_config(page_title="dtviz — conditioning vectors of diffusion transformers",
                   page_icon=os.path.join(ROOT, "assets", "icon.png"),
                   layout="wide")

# A compact header: the title, the settings line and the headline numbers take ~170 px instead of ~330, so each
# page's own figure starts in the first screen at 1600×1000.
st.html("""<style>
[data-testid="stMainBlockContainer"] { padding-top: 3.6rem; }
[data-testid="stMainBlockContainer"] h1 { font-size: 2.0rem; padding: 0 0 0.2rem 0; }
[data-testid="stMetricValue"] { font-size: 1.55rem; }
[data-testid="stMetric"] { padding: 0; }
</style>""")

pages = {module: st.Page(common.view_path(module), title=title, url_path=url, icon=icon)
         for module, title, url, _, icon in common.PAGES}


def home() -> None:
    """The root URL shows the overview; /overview is the overview's own page. A default page is served at "/" only,
    so were the overview the default, /overview would exist only while the server's first session switches out of
    legacy page discovery: every later visit of /overview showed "Page not found"."""
    common.page_module("overview").main()


root = st.Page(home, title="dtviz", url_path="home", default=True, visibility="hidden")
nav = st.navigation({"Views": [root] + [pages[m] for m, *_ in common.PAGES if m != "pruning"],
                     "Tools": [pages["pruning"]]}, expanded=True)
module = next((m for m, p in pages.items() if p.url_path == nav.url_path), "overview")
prefix = next(pfx for m, _, _, pfx, _ in common.PAGES if m == module)

ctx = common.sidebar()
common.set_ctx(ctx)
common.start_page(module)
try:
    nav.run()
except DtvizInputError as err:  # bad input inside a page: the library's sentence, never a traceback
    common.show_error(err)  # plain text, no server path
except Exception as err:  # noqa: BLE001 — a bug must not take the other pages down
    if type(err).__module__.startswith("streamlit"):
        raise
    show_bug(module)
common.prune_url(prefix)
with st.sidebar:
    st.divider()
    common.export_buttons(ctx, nav.title)
