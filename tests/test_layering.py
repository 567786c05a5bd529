"""engine/ never imports streamlit: the dashboard sits on the engine, not the other way round."""

import re
import subprocess
import sys
from pathlib import Path

ENGINE = Path(__file__).resolve().parents[1] / "engine"


def test_no_streamlit_import_in_engine_sources():
    offenders = [str(path) for path in ENGINE.rglob("*.py")
                 if re.search(r"^\s*(import streamlit|from streamlit)", path.read_text(), re.MULTILINE)]
    assert offenders == []


def test_importing_the_whole_engine_does_not_load_streamlit():
    code = ("import sys, engine.cli, engine.sweep, engine.frontier, engine.store, engine.techniques;"
            "print('streamlit' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
