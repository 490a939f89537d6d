from __future__ import annotations

import json

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from crashsight.redact import JsonLike, MemoRedactor, Redactor

ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
UPPER_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
URL_SAFE = ALNUM + "-._~%"


def token(prefix: str, alphabet: str, size: int) -> st.SearchStrategy[str]:
    return st.text(alphabet, min_size=size, max_size=size + 20).map(lambda s: prefix + s)


# Each shape: a strategy for (the secret, the text that carries it).
_userinfo = st.tuples(
    st.text(URL_SAFE, min_size=1, max_size=12), st.text(URL_SAFE, min_size=4)
).map(lambda up: (f"{up[0]}:{up[1]}", f"https://{up[0]}:{up[1]}@git.example.com/repo.git"))
_bare_userinfo = st.text(URL_SAFE, min_size=8).map(lambda t: (t, f"https://{t}@example.com"))
_query = st.tuples(
    st.sampled_from(
        [
            "token",
            "access_token",
            "KEY",
            "api_key",
            "sig",
            "Signature",
            "X-Amz-Signature",
            "X-Amz-Credential",
            "x-amz-security-token",
        ]
    ),
    st.text(URL_SAFE, min_size=4),
).map(lambda kv: (kv[1], f"https://s3.example.com/b/o?x=1&{kv[0]}={kv[1]}&y=2"))
_authorization = st.tuples(
    st.sampled_from(
        ["Authorization: Bearer {}", "{{'Authorization': 'Bearer {}'}}", 'authorization="Basic {}"']
    ),
    st.text(ALNUM + "-._~+/=", min_size=4),
).map(lambda fv: (fv[1], fv[0].format(fv[1])))
_tokens = st.one_of(
    token("hf_", ALNUM, 30),
    token("ghp_", ALNUM, 36),
    token("gho_", ALNUM, 36),
    token("ghs_", ALNUM, 36),
    token("github_pat_", ALNUM + "_", 60),
    st.text(UPPER_ALNUM, min_size=16, max_size=16).map(lambda s: "AKIA" + s),
    token("xoxb-", ALNUM + "-", 20),
).map(lambda t: (t, t))
SHAPES = st.one_of(_userinfo, _bare_userinfo, _query, _authorization, _tokens)

_words = st.sampled_from(
    [
        *("loading", "model", "step", "loss=0.25", "error:", "see", "the", "log", "at", "rank"),
        *("3", "https://example.com/docs?page=2", "key", "token", "secret", "Bearer", "[Errno 28]"),
    ]
)
ORDINARY = st.lists(_words, max_size=12).map(" ".join)
_punctuation = st.sampled_from(["", " ", '"', "'", "(", ")", ",", ";", "\n", "{", "}", ":", "="])


@given(SHAPES, ORDINARY, _punctuation, _punctuation, ORDINARY)
def test_shaped_secrets_never_survive(
    shape: tuple[str, str], before: str, left: str, right: str, after: str
) -> None:
    """Every known credential shape is masked wherever it sits in surrounding text."""
    secret, carrier = shape
    scaffold = f"{before} {left}{carrier.replace(secret, '', 1)}{right} {after}"
    assume(secret not in scaffold)  # a 4-character secret such as "http" may occur naturally
    text = f"{before} {left}{carrier}{right} {after}"
    assert secret not in Redactor({}).text(text)


@given(SHAPES)
def test_shaped_secrets_in_json_never_survive(shape: tuple[str, str]) -> None:
    """Secrets are masked inside serialized JSON, escaped quotes and all."""
    secret, carrier = shape
    text = json.dumps({"message": f"request failed: {carrier}", "status": 401})
    escaped = json.dumps(secret)[1:-1]
    assume(escaped not in text.replace(escaped, "", 1))  # not also part of the scaffolding
    assert escaped not in Redactor({}).text(text)


@given(ORDINARY)
def test_ordinary_text_is_unchanged(text: str) -> None:
    """Text without secrets passes through untouched."""
    assert Redactor({"HOME": "/root", "MY_TOKEN": "s3cr3t-value"}).text(text) == text


def test_text_around_a_secret_is_kept() -> None:
    """Only the secret is replaced; the URL, the header name and the rest of the line stay."""
    redactor = Redactor({})
    assert (
        redactor.text("clone https://bob:hunter22@github.com/x.git failed")
        == "clone https://***@github.com/x.git failed"
    )
    assert (
        redactor.text("GET /o?X-Amz-Signature=abc123&part=2") == "GET /o?X-Amz-Signature=***&part=2"
    )
    assert redactor.text("{'Authorization': 'Bearer abc.def'}") == "{'Authorization': 'Bearer ***'}"


@pytest.mark.parametrize(
    ("name", "redacted"),
    [
        pytest.param("HF_TOKEN", True, id="token"),
        pytest.param("db_password", True, id="lowercase-password"),
        pytest.param("AWS_SECRET_ACCESS_KEY", True, id="secret"),
        pytest.param("OPENAI_API_KEY", True, id="key"),
        pytest.param("HOME", False, id="ordinary-name"),
    ],
)
def test_environment_values_by_name(name: str, redacted: bool) -> None:
    """Values of variables named like secrets are masked, whatever they look like."""
    text = Redactor({name: "plain-looking-value"}).text("connecting with plain-looking-value now")
    assert ("plain-looking-value" not in text) is redacted


def test_short_environment_values_are_ignored() -> None:
    """A secret variable holding '1' must not erase every '1' in a report."""
    assert Redactor({"USE_TOKEN": "1"}).text("rank 1 of 8") == "rank 1 of 8"


def test_environment_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an explicit mapping, the process environment is used."""
    monkeypatch.setenv("CRASHSIGHT_TEST_SECRET", "from-the-environment")
    assert Redactor().text("value=from-the-environment") == "value=***"


def test_value_redacts_nested_strings_and_keys() -> None:
    """Every string in dicts and lists is redacted, keys included; other values are untouched."""
    redactor = Redactor({"API_KEY": "k3y-value"})
    value: JsonLike = {"k3y-value": ["k3y-value", 1, 2.5, None, True, {"url": "https://u:p4ss@h/"}]}
    assert redactor.value(value) == {"***": ["***", 1, 2.5, None, True, {"url": "https://***@h/"}]}


@given(st.lists(st.one_of(SHAPES.map(lambda shape: shape[1]), ORDINARY), min_size=1, max_size=8))
def test_a_remembering_redactor_redacts_as_its_inner_one(texts: list[str]) -> None:
    """MemoRedactor answers as the redactor it wraps, for strings it remembers and for those too
    long to remember, asked once or again."""
    inner = Redactor({"MY_TOKEN": "s3cr3t-value"})
    memo = MemoRedactor(inner, max_len=40)
    for text in [*texts, *texts, "key: s3cr3t-value"]:
        assert memo.text(text) == inner.text(text)
    assert memo.secrets == inner.secrets != Redactor({}).secrets


def test_lone_surrogates_become_the_text_python_prints() -> None:
    """A string no JSON writer or UTF-8 file can hold leaves the redactor writable, with each lone
    surrogate as Python prints it; secrets around it are still masked."""
    redactor = Redactor({"API_TOKEN": "s3cr3t-value"})
    name = "shard-\udcff.bin"
    assert redactor.text(name) == "shard-\\udcff.bin"
    assert redactor.value({name: [f"{name} s3cr3t-value"]}) == {
        "shard-\\udcff.bin": ["shard-\\udcff.bin ***"]
    }
    assert MemoRedactor(redactor).text(name) == "shard-\\udcff.bin"
    json.dumps(redactor.value([name]), ensure_ascii=False).encode()  # would raise before
