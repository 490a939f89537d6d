"""The literal prefilter: every needle is found, in whichever of its alternations it landed."""

from __future__ import annotations

from crashsight.diagnostics.catalogue import CATALOGUE
from crashsight.diagnostics.prefilter import build_prefilter, minimal_needles


def test_every_needle_of_a_set_larger_than_one_alternation_is_found() -> None:
    needles = tuple(f"needle-{i:03d}!".encode() for i in range(150))  # three alternations
    prefilter = build_prefilter(needles)
    assert prefilter is not None
    filler = b"an ordinary line of training output\n" * 2000
    assert not prefilter.found_in(filler)
    for needle in needles:
        assert prefilter.found_in(filler + b"x " + needle + b" y\n" + filler), needle


def test_the_catalogues_needles_are_each_found_in_their_own_samples() -> None:
    needles = minimal_needles(lit.encode() for sig in CATALOGUE for lit in sig.literals)
    assert len(needles) > 64  # the catalogue needs more than one alternation
    prefilter = build_prefilter(needles)
    assert prefilter is not None
    for sig in CATALOGUE:
        for sample in sig.samples:
            assert prefilter.found_in(sample.encode()) == bool(sig.literals), sample


def test_text_that_is_not_utf8_never_matches_as_bytes_but_does_once_decoded() -> None:
    prefilter = build_prefilter((b"CUDA error",))
    assert prefilter is not None
    raw = b"\xff\xfe CUDA error: an illegal memory access was encountered\n"
    assert not prefilter.found_in(raw)
    assert prefilter.found_in(raw.decode("utf-8", "replace"))
