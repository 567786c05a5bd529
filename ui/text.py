"""User-supplied text (column names, category values, file names, error messages quoting them) shown as literal
text wherever Streamlit parses Markdown: st.markdown, st.caption, st.info/warning/error/success, widget labels
and help tooltips. A column named `![x](http://...)` must read as those characters, never load an image.

`literal(text)` backslash-escapes (CommonMark: a backslash before ASCII punctuation makes it literal) every
character that can start a Markdown construct: `[ ] !` (links, images), `< > &` (HTML, autolinks, entities),
`* _ ~ ``` (emphasis, strike-through, code), `# |` (headings, tables), `$` (LaTeX), `{ }`, and list or quote
markers at the start. Lines are joined (a newline could end a list item or start a block). Some rewriting happens
after parsing, on the text itself, where escapes no longer count: web and e-mail autolinks (`http://`, `www.`,
`a@b.org`), emoji and icon shortcodes (`:smile:`, `:material/home:`). There an invisible word joiner (U+2060) is
put after a colon followed by a letter or a slash, after `www` and before `@`, so that none of them forms (checked
in Chromium, tests/test_browser_literal_text.py). Text without any of these characters is returned unchanged.

Use it on every piece of user text interpolated into Markdown, and only there: never inside backticks (escapes
do not apply in code spans), never on text for st.dataframe, st.code, st.text or selectbox options, which show
text as it is.
"""

from __future__ import annotations

import re

_ALWAYS = re.compile(r"([\\`*\[\]<>&!#|~$@{}])")
JOINER = "\u2060"  # WORD JOINER: zero width, invisible; breaks the text-level rewrites
_EDGE_UNDERSCORE = re.compile(r"(?<![^\W_])_|_(?![^\W_])")  # an underscore inside a word never emphasises
_DIRECTIVE_COLON = re.compile(r":(?=[^\W\d_]|/)")
_WWW = re.compile(r"(?i)\b(www)\.")
_LINE_START = re.compile(r"^(\s*)(?:([-+=>])|(\d+)([.)]))")


def literal(value: object) -> str:
    """`value` as text that Streamlit's Markdown shows character for character (on one line)."""
    text = " ".join(str(value).splitlines())
    text = _ALWAYS.sub(r"\\\1", text)
    text = _EDGE_UNDERSCORE.sub(r"\\_", text)
    text = _DIRECTIVE_COLON.sub(":" + JOINER, text)
    text = _WWW.sub(r"\1" + JOINER + ".", text).replace("\\@", JOINER + "\\@")
    return _LINE_START.sub(lambda m: m.group(1) + (f"\\{m.group(2)}" if m.group(2) else f"{m.group(3)}\\{m.group(4)}"),
                           text, count=1)


def literals(values, separator: str = ", ") -> str:
    """Several pieces of user text (column names), each literal, joined."""
    return separator.join(literal(value) for value in values)
