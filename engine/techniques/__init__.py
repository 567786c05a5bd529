"""Techniques: one module per technique behind one contract (base.Technique -> base.RunResult), registered by
name in registry.py (the built-ins are listed in builtin.py). Import what you need from those modules."""
