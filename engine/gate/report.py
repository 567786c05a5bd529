"""A gate's outcome, and the files CI systems read: JUnit XML (one test case per rule: a failure or a skip with
its line) and JSON (the policy, the recomputed figures, every rule)."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ElementTree
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from engine.gate.policy import GatePolicy
from engine.gate.recompute import Recomputed
from engine.gate.rules import FAIL, PASS, SKIP, RuleResult

SUITE = "privacy-gate"


@dataclass(frozen=True)
class GateOutcome:
    source: str  # what was gated: "run X in STORE", "decision record FILE"
    run_id: str
    policy: GatePolicy
    recomputed: Recomputed
    results: tuple[RuleResult, ...]
    content_hash: str | None = None  # the decision record's

    @property
    def failures(self) -> list[RuleResult]:
        return [result for result in self.results if result.status == FAIL]

    @property
    def passed(self) -> bool:
        return not self.failures

    def lines(self) -> list[str]:
        """One line per rule: `PASS rule: ...`, `FAIL rule: ...` or `skip rule: ...`."""
        mark = {PASS: "PASS", FAIL: "FAIL", SKIP: "skip"}
        return [f"{mark[result.status]} {result.rule}: {result.line}" for result in self.results]


def json_report(outcome: GateOutcome) -> dict[str, Any]:
    return {"suite": SUITE, "source": outcome.source, "run_id": outcome.run_id, "passed": outcome.passed,
            "checked_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "decision_hash": outcome.content_hash, "policy": outcome.policy.to_mapping(),
            "recomputed": {name: (value if value is None or math.isfinite(value) else None)
                           for name, value in asdict(outcome.recomputed).items()},
            "rules": [asdict(result) for result in outcome.results]}


def junit_xml(outcome: GateOutcome) -> str:
    """A JUnit XML report: one <testcase> per rule, named `privacy-gate.<rule>`."""
    counts = {status: sum(result.status == status for result in outcome.results) for status in (FAIL, SKIP)}
    suite = ElementTree.Element("testsuite", name=SUITE, tests=str(len(outcome.results)), failures=str(counts[FAIL]),
                                errors="0", skipped=str(counts[SKIP]),
                                timestamp=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    properties = ElementTree.SubElement(suite, "properties")
    for name, value in (("source", outcome.source), ("run_id", outcome.run_id),
                        ("decision_hash", outcome.content_hash or "")):
        ElementTree.SubElement(properties, "property", name=name, value=value)
    for result in outcome.results:
        case = ElementTree.SubElement(suite, "testcase", classname=SUITE, name=result.rule)
        if result.status == FAIL:
            ElementTree.SubElement(case, "failure", message=result.line, type="PolicyViolation").text = result.line
        elif result.status == SKIP:
            ElementTree.SubElement(case, "skipped", message=result.line)
        else:
            ElementTree.SubElement(case, "system-out").text = result.line
    ElementTree.indent(suite)
    root = ElementTree.Element("testsuites", name=SUITE, tests=suite.get("tests"), failures=suite.get("failures"))
    root.append(suite)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(root, encoding="unicode") + "\n"


def write_reports(outcome: GateOutcome, junit: Path | None = None, json_path: Path | None = None) -> None:
    if junit is not None:
        junit.parent.mkdir(parents=True, exist_ok=True)
        junit.write_text(junit_xml(outcome), encoding="utf-8")
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(json_report(outcome), indent=2, allow_nan=False) + "\n", encoding="utf-8")
