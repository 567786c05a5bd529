"""The privacy gate (`frontier gate`): a policy file's limits checked against one chosen run, as a CI test.

- `policy.py`: what a policy declares (GatePolicy), read strictly from YAML with one-line errors; the policy
  that would gate a decision as it stands.
- `record.py`: the decision record (decision.json): everything a decision rests on, with a content hash.
- `recompute.py`: every privacy figure the gate checks, recomputed from the recorded mechanisms with Google's
  dp-accounting, never taken from the stored number.
- `scan.py`: the training table rescanned for identifier-like columns (the upload rules, engine.data.identifiers).
- `rules.py`: one function per rule, each a pass / fail / skip and one line saying what and how to fix it.
- `report.py`: the outcome as JUnit XML and JSON, so any CI system shows it as a test suite.
"""
