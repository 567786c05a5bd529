"""Privacy Frontier dashboard: the router and the set-up every page shares (`streamlit run app.py`).

Pages live in views/ (not pages/: a folder named pages/ makes Streamlit 1.67 serve a deep link such as
/frontier on a freshly started server in its legacy mode, without this router); each reads its widgets, builds one typed config, calls one engine function and
renders the answer.
"""

from __future__ import annotations

import os

import streamlit as st

from engine.techniques.registry import PLUGINS_ENVIRONMENT_VARIABLE, load_plugins
from ui.common import workspace

# An emoji favicon (drawn in the browser): a page's `:material/...:` icon as favicon is fetched from fonts.gstatic.com,
# and the dashboard sends nothing anywhere (tests/test_browser_literal_text.py records every request).
st.set_page_config(page_title="Privacy Frontier", page_icon="🔒", layout="wide")
load_plugins(os.environ.get(PLUGINS_ENVIRONMENT_VARIABLE))  # the surfaces read the plugin list, once
# Streamlit forgets a page's widget values when another page is shown; re-assigning them on every run keeps the
# Sweep form (and Decide's constraints) as the user left them (Streamlit's documented way to keep widget state).
for key in [key for key in st.session_state if str(key).startswith(("sweep_", "decide_")) and
            not str(key).startswith(("sweep_launch", "sweep_demo", "sweep_cancel", "sweep_see", "decide_download",
                                     "decide_candidates"))]:
    st.session_state[key] = st.session_state[key]

with st.sidebar:
    store_path = workspace().store_path
    st.markdown("**Result store**")
    st.code(str(store_path), language=None, wrap_lines=True)
    if store_path.exists():
        st.caption("Set `FRONTIER_STORE` (or `frontier --store PATH`) to read another store.")
    else:
        st.caption("No store there yet: `frontier sweep` creates it. Set `FRONTIER_STORE` to read another.")
    with st.expander("What is this?", expanded=False, key="sidebar_about"):
        st.markdown(
            "This tool measures **what privacy costs**: how much accuracy a model gives up for each privacy "
            "budget **ε** (epsilon; smaller ε = stronger privacy), next to the same model trained without "
            "privacy.\n\n"
            "Every ε shown is computed by a real privacy accountant (PRV or RDP, from Opacus) for the training "
            "that was actually done, and the accountant and δ are named beside it. Nothing is estimated from "
            "a formula or copied from a paper."
        )

st.navigation([
    st.Page("views/home.py", title="Start", icon=":material/home:", default=True),
    st.Page("views/data.py", title="Data", icon=":material/table:"),
    st.Page("views/sweep.py", title="Sweep", icon=":material/play_circle:"),
    st.Page("views/frontier.py", title="Frontier", icon=":material/show_chart:"),
    st.Page("views/decide.py", title="Decide", icon=":material/gavel:"),
]).run()
