"""Sweeps: read a spec (spec.py), plan it once (plan.py), train the plan (execute.py) into the result store
(store.py, records.py, migrations.py), reporting progress events (events.py)."""
