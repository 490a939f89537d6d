"""Hypothesis strategies shared by more than one test module."""

from __future__ import annotations

from hypothesis import strategies as st

#: Any text, lone surrogates often: undecodable file names reach a runner as those (``os.fsdecode``),
#: and hypothesis leaves surrogates out of its text unless told.
TEXTS = st.text(st.characters(exclude_categories=()) | st.integers(0xD800, 0xDFFF).map(chr))
