"""`check` reaching each remote reward's endpoint once, and saying what it answered.

judge: GET BASE_URL/models (costs no tokens): does the endpoint serve `model`?
http: one POST of an empty sample (prompt, completion and answer ""): its status and the
`score_field` it returned. Unreachable endpoints are said, not fatal (the server may start later).
"""

from __future__ import annotations

import json

import httpx

from ..config.args import RemoteRewardSettings
from ..errors import Problem
from .kinds import kind_of


def reach(spec: RemoteRewardSettings, index: int) -> tuple[str, Problem | None]:
    """One line saying what the endpoint answered; a Problem when it answered that the config is wrong."""
    kind = kind_of(spec)
    try:
        with httpx.Client(timeout=min(spec.timeout_s, 10.0), trust_env=False) as client:
            if spec.kind == "judge":
                url = str(spec.base_url).rstrip("/") + "/models"
                response = client.get(url, headers=kind.headers())
            else:
                url = str(spec.url)
                response = client.post(url, json={"prompt": "", "completion": "", "answer": ""}, headers=kind.headers())
    except httpx.HTTPError as exc:
        return f"warning: remote reward {spec.name!r}: {url} did not answer ({type(exc).__name__}); " \
               "start it before training, or fix the URL", None
    head = f"remote reward {spec.name!r}: {url} answered HTTP {response.status_code}"
    try:
        data = json.loads(response.content)
    except ValueError:
        data = None
    if spec.kind == "judge":
        served = [m.get("id") for m in (data or {}).get("data", []) if isinstance(m, dict)] \
            if isinstance(data, dict) else []
        if response.status_code == 200 and served and spec.model not in served:
            return head, Problem(f"grpo_plugin.remote_rewards[{index}].model", spec.model,
                                 f"the endpoint does not serve it (it serves: {', '.join(map(str, served))}).",
                                 "use one of the served names")
        return f"{head}, serves {', '.join(map(str, served)) or 'no model list'}", None
    if isinstance(data, dict) and spec.score_field in data:
        return f"{head}, {spec.score_field} = {data[spec.score_field]!r} for an empty sample", None
    return f"warning: {head} without the field {spec.score_field!r} " \
           f"({response.content[:80]!r}); check url and score_field", None
