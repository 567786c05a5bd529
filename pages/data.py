"""data page (being built for issue 3)."""

import streamlit as st

st.title("Data")
st.info("This page is being built.")
