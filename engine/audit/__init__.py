"""Empirical privacy audits: membership-inference attacks and one-run epsilon lower bounds on trained runs.

Only documents: import the modules themselves (settings, run, records, statistics, ...). See ARCHITECTURE.md.
"""
