"""Small Streamlit helpers shared by the pages (cached loaders, common widgets). Engine logic stays in engine/."""
