"""sweep page (being built for issue 3)."""

import streamlit as st

st.title("Sweep")
st.info("This page is being built.")
