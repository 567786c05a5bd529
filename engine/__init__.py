"""Privacy Frontier engine: trains models under privacy techniques across grids, caches every run.

Never imports streamlit: the dashboard (app.py, views/) and the CLI (engine.cli) both sit on top.
"""

ENGINE_VERSION = "0.2.0"  # enters every cache key: bump when a change alters what a run computes (0.2: secret noise)
