"""The keys each remote reward kind needs, checked before anything loads (`check` and
`axolotl train` share it through checks.py). Types and ranges are args.py's job."""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit

from ..config.args import RemoteRewardSettings
from ..config.run import Run
from ..errors import Problem
from ..registry import REWARDS, VALID_NAME
from .kinds import template_fields


JUDGE_ONLY = ("base_url", "model", "api_key_env", "template", "budget_tokens")
HTTP_ONLY = ("url",)
DOC = "docs/remote-rewards.md"


def check(run: Run) -> list[Problem]:
    specs = run.plugin.remote_rewards or []
    problems: list[Problem] = []
    seen: set[str] = set()
    for i, spec in enumerate(specs):
        at = f"grpo_plugin.remote_rewards[{i}]"
        problems += _name(spec, at, seen)
        problems += _judge(spec, at) if spec.kind == "judge" else _http(spec, at)
    return problems


def _name(spec: RemoteRewardSettings, at: str, seen: set[str]) -> list[Problem]:
    key = f"{at}.name"
    if not VALID_NAME.match(spec.name) or "__" in spec.name:
        return [Problem(key, spec.name, "a reward name is letters, digits and single `_`, starting with a letter.",
                        "rename it, e.g. `judge_correct`")]
    if spec.name in seen:
        return [Problem(key, spec.name, "two remote rewards have this name.", "give each a name of its own")]
    seen.add(spec.name)
    if spec.name in REWARDS:
        return [Problem(key, spec.name, "a registered reward already has this name.",
                        f"pick another name (registered: {', '.join(REWARDS.names())})")]
    return []


def _missing(spec: RemoteRewardSettings, at: str, keys: tuple[str, ...], example: dict) -> list[Problem]:
    return [Problem(f"{at}.{key}", None, f"a `kind: {spec.kind}` remote reward needs `{key}`.",
                    f"add it, e.g. `{key}: {example[key]}` ({DOC})") for key in keys if getattr(spec, key) in (None, "")]


def _foreign(spec: RemoteRewardSettings, at: str, keys: tuple[str, ...]) -> list[Problem]:
    other = "http" if spec.kind == "judge" else "judge"
    return [Problem(f"{at}.{key}", getattr(spec, key), f"`{key}` is a `kind: {other}` key; "
                    f"a `kind: {spec.kind}` reward does not read it.",
                    f"remove it, or set `kind: {other}`") for key in keys if getattr(spec, key) is not None]


def _url(value: str | None, key: str) -> list[Problem]:
    if value is None:
        return []
    parts = urlsplit(str(value))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return [Problem(key, value, "not an http(s) URL.", "write it as http://HOST:PORT/PATH")]
    return []


def _judge(spec: RemoteRewardSettings, at: str) -> list[Problem]:
    problems = _missing(spec, at, ("base_url", "model", "template"), {
        "base_url": "http://127.0.0.1:8000/v1", "model": "Qwen/Qwen2.5-7B-Instruct",
        "template": '"Question: {prompt} Answer: {completion} Gold: {answer}. Reply SCORE: 0-10"'})
    problems += _foreign(spec, at, HTTP_ONLY)
    problems += _url(spec.base_url, f"{at}.base_url")
    if spec.template:
        try:
            names = template_fields(spec.template)
        except ValueError as exc:
            problems.append(Problem(f"{at}.template", spec.template, f"not a usable template ({exc}).",
                                    "use `{prompt}`, `{completion}`, `{answer}` or a dataset column; "
                                    "write `{{` and `}}` for literal braces"))
        else:
            if "completion" not in names:
                problems.append(Problem(f"{at}.template", spec.template, "never shows the judge the completion.",
                                        "add `{completion}` where the judged answer goes"))
    try:
        groups = re.compile(spec.score.regex).groups
    except re.error as exc:
        problems.append(Problem(f"{at}.score.regex", spec.score.regex, f"not a regular expression ({exc}).",
                                "fix it, e.g. `SCORE: *([0-9]+)`"))
    else:
        if groups < 1:
            problems.append(Problem(f"{at}.score.regex", spec.score.regex, "has no group around the number.",
                                    "put the number in parentheses, e.g. `SCORE: *([0-9]+)`"))
    if spec.score.min >= spec.score.max:
        problems.append(Problem(f"{at}.score.max", spec.score.max, f"must be above score.min ({spec.score.min:g}).",
                                "give the rubric's range, e.g. `min: 0, max: 10`"))
    if spec.api_key_env and not os.environ.get(spec.api_key_env):
        problems.append(Problem(f"{at}.api_key_env", spec.api_key_env, "this environment variable is not set "
                                "(its value is the API key).", f"export {spec.api_key_env}=... before you launch, "
                                "or remove `api_key_env` for an endpoint without a key"))
    return problems


def _http(spec: RemoteRewardSettings, at: str) -> list[Problem]:
    problems = _missing(spec, at, ("url",), {"url": "http://127.0.0.1:8080/verify"})
    problems += _foreign(spec, at, JUDGE_ONLY)
    problems += _url(spec.url, f"{at}.url")
    if not spec.score_field:
        problems.append(Problem(f"{at}.score_field", spec.score_field, "must name the answer's JSON field.",
                                "e.g. `score_field: score`"))
    return problems
