"""Start: what this tool answers, the demo sweep for a first visit, and where each step lives."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from engine import services
from engine.errors import EngineError
from engine.present.demo import DEMO_SECONDS, DEMO_SPEC
from ui.common import load_runs, workspace

PROTECTS = pd.DataFrame([
    ("Differential privacy (dp-sgd, dp-logreg, ...)", "the people in the training data",
     "ε: how much any one person's record can change what the model reveals"),
    ("Local differential privacy (local-dp)", "each record before it leaves its owner",
     "ε per record; no trusted curator needed"),
    ("Federated learning (fedavg, fed-dp-sgd, ...)", "where raw data lives: it never leaves each silo",
     "bytes on the wire, rounds; ε only with a DP wrapper"),
    ("Encrypted inference (he-inference)", "the record being scored, from the scoring service",
     "latency and bytes per record; not an ε"),
], columns=["technique", "protects", "measured as"])

st.title("Privacy Frontier")
st.markdown("What does privacy cost on **your** kind of data? Train the same model with and without privacy across "
            "a range of privacy budgets ε, see how much accuracy each budget gives up, pick one under your "
            "constraints, and take a plain-language summary to your compliance team. Every ε is computed by a real "
            "accountant, named beside it.")

try:
    runs = load_runs()
    running = services.active_job(workspace())
except EngineError as exc:
    st.error(str(exc))
    runs, running = pd.DataFrame(), None

if running is not None:
    st.info(f"A sweep is running on {running.dataset}: {running.done} of {running.total} runs done.",
            icon=":material/hourglass_top:")
    st.page_link("views/sweep.py", label="Follow it on the Sweep page", icon=":material/play_circle:")
elif runs.empty:
    with st.container(border=True, key="home_demo_box"):
        st.markdown(f"**New here? Run the demo.** It trains a small neural network on the Adult census data "
                    f"without privacy and with DP-SGD at ε = "
                    f"{', '.join(format(e, 'g') for e in DEMO_SPEC.epsilons)} "
                    f"(about {DEMO_SECONDS // 60} minutes on an idle 2-core CPU), then draws the frontier.")
        if st.button("Run the demo sweep on adult", key="home_demo", type="primary", icon=":material/play_arrow:"):
            try:
                services.launch(services.plan(DEMO_SPEC, workspace()), workspace())
            except EngineError as exc:
                st.error(str(exc))
            else:
                st.switch_page("views/sweep.py")
else:
    ok = runs[runs["status"] == "ok"]
    per_dataset = ok.groupby("dataset").agg(runs=("run_id", "count"), techniques=("technique", "nunique"))
    st.success(f"{len(ok)} measured runs on {len(per_dataset)} dataset(s) in the store: "
               + ", ".join(f"{name} ({row.runs})" for name, row in per_dataset.iterrows()) + ".",
               icon=":material/check_circle:")
    st.page_link("views/frontier.py", label="See the frontiers", icon=":material/show_chart:")

st.subheader("Four steps")
steps = [
    ("views/data.py", ":material/table:", "Data", "choose a bundled dataset or upload a CSV (identifiers are dropped)."),
    ("views/sweep.py", ":material/play_circle:", "Sweep", "train every technique and budget you want to compare, in "
                                                          "the background; nothing is ever trained twice."),
    ("views/frontier.py", ":material/show_chart:", "Frontier", "accuracy against ε and against cost, per technique."),
    ("views/decide.py", ":material/gavel:", "Decide", "set your limits, pick a budget, export the summary and the "
                                                      "exact configuration."),
]
for page, icon, label, text in steps:
    with st.container(horizontal=True, vertical_alignment="center"):
        st.page_link(page, label=label, icon=icon, width="content")
        st.caption(text)

st.subheader("What each technique protects")
st.dataframe(PROTECTS, hide_index=True, width="stretch", key="home_protects")
st.caption("They answer different threats and combine: a model trained with DP-SGD across federated silos can be "
           "served under encryption.")
