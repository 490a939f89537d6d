"""Secret redaction: the last step before any text enters a report, a summary or a log line.

Crash reports travel: they are printed in CI logs, attached to issues, posted to chat. The stderr
they quote often holds credentials — a URL with a password, a signed S3 link, a token a library
echoed while failing. `Redactor` replaces them with ``***`` and leaves the text around them intact,
so the report still reads. It knows two kinds of secret: the values of this process's secret-looking
environment variables (whatever they look like), and the shapes of well-known credentials.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import TypeAlias

from .jsontext import printable

__all__ = ["MASK", "JsonLike", "MemoRedactor", "Redactor"]

#: What every secret is replaced with.
MASK = "***"

JsonLike: TypeAlias = "str | int | float | bool | list[JsonLike] | dict[str, JsonLike] | None"

_SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|KEY", re.IGNORECASE)
_MIN_SECRET_LEN = 4  # shorter values ("1", "yes") are everywhere in ordinary text

#: Names of keys, headers and flags whose value is a credential: password, db_password, api-key,
#: X-Api-Key, hf_token, secret (not "tokens", "tokenizer" or "max_new_tokens").
_SECRET_KEY = (
    r"(?:[\w-]{0,40}[_-])?(?:password|passwd|secret|api[_-]?key|access[_-]?key|token)(?![\w])"
)

# Each pattern keeps the groups named ``keep`` and masks the rest of the match.
_SHAPES: tuple[re.Pattern[str], ...] = (
    # URL userinfo: https://user:pass@host/ and https://token@host. The scheme must start at a
    # boundary and both parts are bounded, so a long line without spaces costs linear time.
    re.compile(
        r"(?<![A-Za-z0-9+.-])(?P<keep>[A-Za-z][A-Za-z0-9+.-]{0,31}://)[^\s/?#@]{1,512}(?=@)"
    ),
    # Query parameters that carry credentials or signatures.
    re.compile(
        r"(?P<keep>[?&;](?:access_token|api_key|token|key|sig|signature"
        r"|X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token)=)[^&#\s\"'<>]+",
        re.IGNORECASE,
    ),
    # Authorization headers, also in a dict repr or (escaped) JSON: 'Authorization': 'Bearer abc'
    re.compile(
        r"(?P<keep>authorization\\?[\"']?\s*[:=]\s*\\?[\"']?(?:bearer|basic|token)\s+)[^\s\"',;}\\]+",
        re.IGNORECASE,
    ),
    re.compile(r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}"),  # OpenAI and Anthropic API keys
    re.compile(r"hf_[A-Za-z0-9]{20,}"),  # Hugging Face
    re.compile(r"gh[opsur]_[A-Za-z0-9]{20,}"),  # GitHub OAuth, app and user tokens
    re.compile(r"github_pat_[A-Za-z0-9_]{20,}"),  # GitHub fine-grained tokens
    re.compile(r"AKIA[0-9A-Z]{16}"),  # AWS access key ids
    re.compile(r"xox[abprs]-[A-Za-z0-9-]{10,}"),  # Slack
)


#: A flag whose next argument is a secret: --password, --api-key, --hf-token, -secret.
_SECRET_FLAG = re.compile(rf"-{{1,2}}{_SECRET_KEY}", re.IGNORECASE)


#: Credentials named by their key. The scan for a key name is linear, so these patterns (whose
#: bounded prefix costs ~40 steps per position) only run on text that names one at all.
_KEY_NAMES = re.compile(r"password|passwd|secret|api[_-]?key|access[_-]?key|token", re.IGNORECASE)
_KEYED_SHAPES: tuple[re.Pattern[str], ...] = (
    # key=value and key: value pairs and headers named like credentials (password=..., api_key:
    # ..., X-Api-Key: ...), and command-line flags such as --password VALUE.
    re.compile(
        rf"(?P<keep>(?<![A-Za-z0-9])(?:X-)?{_SECRET_KEY}\\?[\"']?\s*[=:]\s*\\?[\"']?)"
        r"(?!\*\*\*)[^\s\"',;&}\\]{4,}",
        re.IGNORECASE,
    ),
    re.compile(
        rf"(?P<keep>(?<![\w-])-{{1,2}}{_SECRET_KEY} )(?!\*\*\*)[^\s\"',;&}}\\]{{4,}}", re.IGNORECASE
    ),
)


#: What every shape above needs somewhere in the text, lower-cased (a superset): most strings of
#: a report hold none and skip the nine patterns. Plain substring tests, since one regular
#: expression with these alternatives costs as much as the patterns it would spare.
_SHAPE_TRIGGERS = (
    "://",
    "?",
    "&",
    ";",
    "authorization",
    "sk-",
    "hf_",
    "gh",
    "github_pat_",
    "akia",
    "xox",
)
#: The same for `_KEY_NAMES`.
_KEY_TRIGGERS = ("passw", "secret", "api", "access", "token")


def _mask(match: re.Match[str]) -> str:
    keep = match.groupdict().get("keep")
    return f"{keep}{MASK}" if keep else MASK


class Redactor:
    """Replaces secrets in text and JSON-like values with ``***``.

    Args:
        env: The environment whose secret-looking variables (name contains TOKEN, SECRET, PASSWORD
            or KEY, any case) have their values redacted wherever they appear. Values shorter
            than 4 characters are ignored, or every "1" in a report would vanish. Defaults to
            ``os.environ``.
    """

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        source = os.environ if env is None else env
        values = sorted(
            {v for k, v in source.items() if _SECRET_NAME.search(k) and len(v) >= _MIN_SECRET_LEN},
            key=len,
            reverse=True,  # longest first, so a value containing another is masked whole
        )
        self._env = re.compile("|".join(map(re.escape, values))) if values else None

    @property
    def secrets(self) -> str:
        """What this redactor knows beyond the shapes (as a pattern): equal means it redacts alike."""
        return "" if self._env is None else self._env.pattern

    def text(self, s: str) -> str:
        """Return ``s`` with every known secret replaced by ``***``.

        Lone surrogates (a file name ``os.fsdecode`` could not decode, in a command line, a path,
        a process's name) become the text Python prints for them, ``\\udcff``: every report
        passes through here, and JSON (pydantic's writer refuses them) and UTF-8 files cannot
        hold them. The report is still written, with the name as a traceback shows it.
        """
        s = printable(s)
        if self._env is not None:
            s = self._env.sub(MASK, s)
        lowered = s.lower()
        if any(trigger in lowered for trigger in _SHAPE_TRIGGERS):
            for shape in _SHAPES:
                s = shape.sub(_mask, s)
        if any(trigger in lowered for trigger in _KEY_TRIGGERS) and _KEY_NAMES.search(s):
            for shape in _KEYED_SHAPES:
                s = shape.sub(_mask, s)
        return s

    def argv(self, args: list[str]) -> list[str]:
        """Redact a command line, including the value that follows a flag like ``--password``."""
        out: list[str] = []
        for arg in args:
            if out and _SECRET_FLAG.fullmatch(out[-1]):
                out.append(MASK)
            else:
                out.append(self.text(arg))
        return out

    def context(self, pairs: Mapping[str, str]) -> dict[str, str]:
        """Redact ``key=value`` context: values of keys named like secrets are masked whole."""
        return {
            self.text(k): MASK if _SECRET_NAME.search(k) or _KEY_NAMES.search(k) else self.text(v)
            for k, v in pairs.items()
        }

    def report_fields(self, data: dict[str, JsonLike]) -> dict[str, JsonLike]:
        """Redact a dumped status or report: every string, plus its argv and context by meaning."""
        clean = self.value(data)
        assert isinstance(clean, dict)
        command = data.get("command")
        if isinstance(command, list) and all(isinstance(arg, str) for arg in command):
            clean["command"] = list(self.argv([str(arg) for arg in command]))
        context = data.get("context")
        if isinstance(context, dict):
            clean["context"] = dict(self.context({k: str(v) for k, v in context.items()}))
        return clean

    def value(self, v: JsonLike) -> JsonLike:
        """Redact every string in a JSON-like value, dictionary keys included."""
        if isinstance(v, str):
            return self.text(v)
        if isinstance(v, list):
            return [self.value(item) for item in v]
        if isinstance(v, dict):
            return {self.text(k): self.value(item) for k, item in v.items()}
        return v


class MemoRedactor(Redactor):
    """A redactor that redacts each distinct string once.

    Reports repeat most of their strings (field names, verdicts, hosts, exit descriptions), one
    report to the next: thousands of rank reports in `aggregate`, every runner's status in a
    supervisor of a thousand runners.

    Args:
        inner: The redactor whose results are remembered.
        max_len: Longer strings are redacted every time, not remembered (a long-lived memo of
            stderr lines would grow with the logs); None remembers all.
    """

    #: Distinct strings remembered; past this the memo starts over, so memory stays bounded.
    _MAX = 100_000

    def __init__(self, inner: Redactor, max_len: int | None = None) -> None:
        self._inner = inner
        self._max_len = max_len
        self._seen: dict[str, str] = {}

    @property
    def secrets(self) -> str:
        """The inner redactor's: a memo redacts exactly as it does."""
        return self._inner.secrets

    def text(self, s: str) -> str:
        """The inner redactor's result for ``s``, computed once."""
        done = self._seen.get(s)
        if done is None:
            done = self._inner.text(s)
            if self._max_len is None or len(s) <= self._max_len:
                if len(self._seen) >= self._MAX:
                    self._seen.clear()
                self._seen[s] = done
        return done
