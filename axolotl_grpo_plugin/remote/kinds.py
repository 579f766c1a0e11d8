"""What each remote reward kind sends, and how its answer becomes a number.

A request is built from one sample (its prompt, completion, answer and dataset columns as TRL
passes them) and is pure data, so it can be hashed for the cache. Parsing never raises past
`Unusable`, which the caller turns into None for that sample.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import string
from dataclasses import dataclass, field
from typing import Any

from axolotl_grpo_rewards.text import completion_text

from ..config.args import RemoteRewardSettings


JUDGE_MAX_TOKENS = 512  # a judge's verdict is short; bounds what one call can cost
JUDGE, HTTP = "judge", "http"


class Unusable(ValueError):
    """A sample that cannot be sent, or an answer that holds no usable number."""


@dataclass(frozen=True)
class Request:
    url: str
    body: dict
    key: str  # the cache key: every input that decides the answer
    headers: dict = field(default_factory=dict, compare=False, repr=False)  # the API key: never logged


def prompt_text(prompt: object) -> str:
    """A plain prompt as is; a chat prompt as its last user message (the question)."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, (list, tuple)):
        for message in reversed(prompt):
            if isinstance(message, dict) and message.get("role") == "user":
                return completion_text([message])
    return completion_text(prompt)


def template_fields(template: str) -> list[str]:
    """The `{names}` a judge template fills; ValueError for a malformed one or `{}`/`{0}`/`{a.b}`."""
    names = []
    for _, name, _, _ in string.Formatter().parse(template):
        if name is None:
            continue
        if not name.isidentifier():
            raise ValueError(f"placeholder {{{name}}} is not a column name")
        names.append(name)
    return names


def _json_safe(value: Any) -> Any:
    try:
        json.dumps(value, allow_nan=False)
        return value
    except (TypeError, ValueError):
        return None if isinstance(value, float) else str(value)


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class Kind:
    """The per-kind half of a remote reward."""

    def __init__(self, spec: RemoteRewardSettings):
        self.spec = spec

    def headers(self) -> dict:
        env = self.spec.api_key_env
        key = os.environ.get(env) if env else None
        return {"Authorization": f"Bearer {key}"} if key else {}

    def request(self, sample: dict) -> Request:
        raise NotImplementedError

    # A well-formed answer without a usable score: a judge at temperature 0 says it again, so
    # it is kept (None, cached, counted as unscored); a verifier's is a failure (not cached).
    keeps_unusable = False

    def parse(self, data: Any) -> float | None:
        """The reward in the decoded JSON answer; Unusable when it holds none."""
        raise NotImplementedError

    def tokens(self, data: Any) -> int:
        """Tokens the answer cost (the endpoint's `usage.total_tokens`), 0 when it does not say."""
        try:
            return max(0, int((data.get("usage") or {}).get("total_tokens") or 0))
        except (AttributeError, TypeError, ValueError):
            return 0


class Judge(Kind):
    """An OpenAI-compatible chat-completions endpoint that grades with a rubric."""

    def __init__(self, spec: RemoteRewardSettings):
        super().__init__(spec)
        self.url = str(spec.base_url).rstrip("/") + "/chat/completions"
        self.pattern = re.compile(spec.score.regex)
        self.settings_hash = _digest(spec.template, spec.score.model_dump(), spec.scale)

    def request(self, sample: dict) -> Request:
        fields = {k: v for k, v in sample.items() if k not in ("prompt", "completion")}
        fields["prompt"] = prompt_text(sample.get("prompt"))
        fields["completion"] = completion_text(sample.get("completion"))
        try:
            content = str(self.spec.template).format_map(fields)
        except (KeyError, IndexError, ValueError, AttributeError) as exc:
            raise Unusable(f"template needs {exc} (not a column of this sample)") from None
        body = {"model": self.spec.model, "messages": [{"role": "user", "content": content}],
                "temperature": 0, "max_tokens": JUDGE_MAX_TOKENS}
        return Request(self.url, body, _digest(JUDGE, self.url, self.spec.model, self.settings_hash, content),
                       self.headers())

    keeps_unusable = True

    def parse(self, data: Any) -> float | None:
        try:
            text = data["choices"][0]["message"]["content"]
        except (AttributeError, KeyError, IndexError, TypeError, ValueError):
            raise Unusable("not a chat-completions answer (no choices[0].message.content)") from None
        if not isinstance(text, str):
            raise Unusable("the answer's content is not text")
        last = None
        for last in self.pattern.finditer(text[-20000:]):
            pass
        if last is None or not last.groups() or last.group(1) is None:
            raise Unusable(f"no score matching {self.spec.score.regex!r} in the answer {text[-80:]!r}"[:200])
        try:
            number = float(last.group(1))
        except ValueError:
            raise Unusable(f"{last.group(1)!r} is not a number") from None
        score = self.spec.score
        if not (score.min <= number <= score.max):
            raise Unusable(f"score {number:g} is outside [{score.min:g}, {score.max:g}]")
        return number * self.spec.scale


class Verifier(Kind):
    """Any HTTP endpoint that answers a JSON POST of the sample with a number."""

    def request(self, sample: dict) -> Request:
        body = {k: _json_safe(v) for k, v in sample.items() if k not in ("prompt", "completion")}
        body["prompt"] = prompt_text(sample.get("prompt"))
        body["completion"] = completion_text(sample.get("completion"))
        body.setdefault("answer", None)
        url = str(self.spec.url)
        return Request(url, body, _digest(HTTP, url, self.spec.score_field, body), self.headers())

    def parse(self, data: Any) -> float | None:
        if not isinstance(data, dict) or self.spec.score_field not in data:
            raise Unusable(f"the answer has no field {self.spec.score_field!r}")
        value = data[self.spec.score_field]
        if value is None:
            return None  # the verifier's "not applicable"
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise Unusable(f"{self.spec.score_field!r} is {str(value)[:40]!r}, not a finite number")
        return float(value)


def kind_of(spec: RemoteRewardSettings) -> Kind:
    return Judge(spec) if spec.kind == JUDGE else Verifier(spec)
