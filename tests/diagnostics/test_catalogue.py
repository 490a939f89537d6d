"""The signature catalogue tests itself: its samples, its regexes, its ids and its hooks."""

from __future__ import annotations

import errno

import pytest

from crashsight.diagnostics.catalogue import (
    CATALOGUE,
    SIGNATURE_IDS,
    diagnose_line,
    enrich_fields,
    ids_matching,
    match_line,
    signature_by_id,
)
from crashsight.diagnostics.classify import Classifier, Facts
from crashsight.diagnostics.models import Signature

SAMPLES = [
    pytest.param(signature, sample, id=f"{signature.id}-{index}")
    for signature in CATALOGUE
    for index, sample in enumerate(signature.samples)
]

#: Pairs (entry, other entry) where a sample of the first also matches the second, on purpose.
#: Both sides agree on the category; see the catalogue's module docstring.
INTENDED_OVERLAPS = {
    ("metal.gpu_timeout", "cxx.libcxxabi_terminate"),
    ("metal.out_of_memory", "cxx.libcxxabi_terminate"),
    ("metal.malloc", "cxx.libcxxabi_terminate"),
    ("cxx.libcxxabi_terminate", "metal.gpu_timeout"),
    # metal.command_buffer is the catch-all for Metal reasons without an entry of their own; the
    # specific entries come first in the catalogue, so they decide (test_sample_classifies_to_its_entry).
    ("metal.gpu_timeout", "metal.command_buffer"),
    ("metal.impacting_interactivity", "metal.command_buffer"),
    ("metal.out_of_memory", "metal.command_buffer"),
    ("metal.command_buffer", "cxx.libcxxabi_terminate"),
    ("cxx.libcxxabi_terminate", "metal.command_buffer"),
    # The terminate handlers are evidence only; std::bad_alloc says what they terminated on.
    ("cxx.bad_alloc", "cxx.terminate"),
    ("cxx.bad_alloc", "cxx.libcxxabi_terminate"),
    # cxx.what is evidence only: the what() of a C++ exception may quote another library's error.
    ("nccl.watchdog_timeout", "cxx.what"),
}


def test_catalogue_is_large_and_ids_are_unique() -> None:
    """The catalogue covers at least 35 failures and no id is used twice."""
    ids = [signature.id for signature in CATALOGUE]
    assert len(ids) >= 35
    assert len(set(ids)) == len(ids)
    assert frozenset(ids) == SIGNATURE_IDS


@pytest.mark.parametrize("signature", CATALOGUE, ids=lambda s: s.id)
def test_every_entry_is_complete(signature: Signature) -> None:
    """Every named group of the regex is extracted as a field from one of the entry's samples,
    and the entry names a source and carries real words in description and hint."""
    extracted: set[str] = set()
    for sample in signature.samples:
        diagnostic = diagnose_line(signature, sample)
        assert diagnostic is not None
        extracted |= diagnostic.fields.keys()
    assert set(signature.regex.groupindex) <= extracted
    assert signature.source
    assert signature.description
    assert signature.hint
    assert all(literal.strip() for literal in signature.literals)


@pytest.mark.parametrize(("signature", "sample"), SAMPLES)
def test_sample_matches_its_own_entry(signature: Signature, sample: str) -> None:
    """A sample contains one of its entry's literals and the entry's regex matches it."""
    assert any(literal in sample for literal in signature.literals)
    assert signature.regex.search(sample) is not None
    assert match_line(signature, sample) is not None


@pytest.mark.parametrize(("signature", "sample"), SAMPLES)
def test_sample_classifies_to_its_entry(signature: Signature, sample: str) -> None:
    """A diagnostic built from a sample gets its entry's category, unless evidence only."""
    diagnostic = diagnose_line(signature, sample)
    assert diagnostic is not None
    verdict = Classifier().classify(Facts(diagnostics=[diagnostic]))
    if signature.evidence_only:
        assert verdict.category == "unknown"
    else:
        assert (verdict.category, verdict.subcategory) == (
            signature.category,
            signature.subcategory,
        )
        assert verdict.evidence == sample
        assert verdict.hint == signature.hint


@pytest.mark.parametrize(("signature", "sample"), SAMPLES)
def test_sample_is_not_claimed_by_another_category(signature: Signature, sample: str) -> None:
    """No other entry of a different category matches a sample, bar the listed overlaps."""
    for other in CATALOGUE:
        if other.id == signature.id or match_line(other, sample) is None:
            continue
        if (signature.id, other.id) in INTENDED_OVERLAPS:
            continue  # ranked by the rules: the specific entry's tier comes first
        assert (
            other.category == signature.category or other.evidence_only or signature.evidence_only
        ), f"{other.id} also matches {sample!r}"
        assert other.subcategory == signature.subcategory, other.id


@pytest.mark.parametrize(
    ("signature_id", "line", "expected"),
    [
        pytest.param(
            "cuda.oom",
            "[rank3]: torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. "
            "GPU 3 has a total capacity of 79.15 GiB of which 1.23 GiB is free.",
            {"size": "2.00 GiB", "gpu": "3"},
            id="rank-prefix",
        ),
        pytest.param(
            "ring.socket_errno",
            "2025-01-02 03:04:05,678 ERROR [ring] Sending to socket 17 failed with errno 32",
            {"socket": "17", "errno": "32", "errno_name": "EPIPE"},
            id="timestamp-prefix",
        ),
        pytest.param(
            "nccl.watchdog_timeout",
            "[rank0]:[E ProcessGroupNCCL.cpp:563] [Rank 0] Watchdog caught collective operation "
            "timeout: WorkNCCL(SeqNum=1234, OpType=ALLREDUCE, NumelIn=1, NumelOut=1, "
            "Timeout(ms)=600000) ran for 600081 milliseconds before timing out.",
            {"rank": "0", "seq": "1234", "op": "ALLREDUCE", "timeout_ms": "600000", "ms": "600081"},
            id="log-format-prefix",
        ),
        pytest.param(
            "requests.http_5xx",
            "requests.exceptions.HTTPError: 503 Server Error: Service Unavailable for url: "
            "https://example.com/a",
            {"status": "503", "reason": "Service Unavailable", "url": "https://example.com/a"},
            id="http-fields",
        ),
    ],
)
def test_fields_are_extracted_through_log_prefixes(
    signature_id: str, line: str, expected: dict[str, str]
) -> None:
    """Named groups become fields even when log formatting precedes the text."""
    assert match_line(signature_by_id(signature_id), line) == expected


def test_literal_prefilter_is_required() -> None:
    """A line the regex would match but that holds no literal is not a match (collector rule)."""
    signature = signature_by_id("metal.out_of_memory")
    assert signature.regex.search("Insufficient Memory") is not None
    assert match_line(signature, "Insufficient Memory") is None


def test_enrich_fields_names_errno_numbers() -> None:
    """enrich_fields adds errno_name for a known errno and leaves other fields alone."""
    assert enrich_fields("ring.socket_errno", {"socket": "23", "errno": "104"}) == {
        "socket": "23",
        "errno": "104",
        "errno_name": errno.errorcode[104],
    }
    assert enrich_fields("python.enospc", {"errno": "28"})["errno_name"] == "ENOSPC"
    assert enrich_fields("cuda.oom", {"gpu": "0"}) == {"gpu": "0"}
    assert "errno_name" not in enrich_fields("python.eio", {"errno": "99999"})


def test_lookups_reject_unknown_ids_clearly() -> None:
    """signature_by_id and enrich_fields raise KeyError naming the id and a close one."""
    with pytest.raises(KeyError, match=r"'cuda\.om'.*did you mean 'cuda\.oom'"):
        signature_by_id("cuda.om")
    with pytest.raises(KeyError, match="no catalogue signature"):
        enrich_fields("nope.nothing", {})


def test_ids_matching_supports_prefix_wildcards() -> None:
    """``ring.*`` selects the ring family, an exact id itself, an unknown id nothing."""
    assert set(ids_matching("ring.*")) == {i for i in SIGNATURE_IDS if i.startswith("ring.")}
    assert ids_matching("cuda.oom") == ("cuda.oom",)
    assert ids_matching("cuda.nope") == ()
