"""A tool rollout's calls and final answer, read from the messages TRL's tool loop returns."""

from __future__ import annotations

from axolotl_grpo_plugin.observe.tool_turns import MAX_RESULT_CHARS, ToolTurns, turns_of


def call(expression, name="calculator"):
    return {"type": "function", "function": {"name": name, "arguments": {"expression": expression}}}


def test_calls_are_paired_with_the_tool_turns_that_answered_them_in_order():
    messages = [
        {"role": "assistant", "content": "", "tool_calls": [call("6*7"), call("1/0")]},
        {"role": "tool", "name": "calculator", "content": "42"},
        {"role": "tool", "name": "calculator", "content": "error: division by zero"},
        {"role": "assistant", "content": "", "tool_calls": [call("2+2")]},
        {"role": "tool", "name": "calculator", "content": "x" * (MAX_RESULT_CHARS + 10)},
        {"role": "assistant", "content": "<answer>\n42\n</answer>"},
    ]
    got = turns_of(messages)
    assert [c["arguments"]["expression"] for c in got["tool_calls"]] == ["6*7", "1/0", "2+2"]
    assert [c["result"] for c in got["tool_calls"]][:2] == ["42", "error: division by zero"]
    assert len(got["tool_calls"][2]["result"]) == MAX_RESULT_CHARS
    assert got["final"] == "<answer>\n42\n</answer>"


def test_a_call_whose_result_trl_rolled_back_has_no_result():
    """TRL drops a tool turn that would overflow max_completion_length."""
    got = turns_of([{"role": "assistant", "content": "", "tool_calls": [call("6*7")]}])
    assert got["tool_calls"] == [{"name": "calculator", "arguments": {"expression": "6*7"}}]
    assert got["final"] == ""


def test_odd_messages_never_raise():
    assert turns_of("plain text") == {"tool_calls": [], "final": "plain text"}
    odd = [None, {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": {1, 2}}}]}]
    assert turns_of(odd)["tool_calls"][0]["arguments"] in ("{1, 2}", "{2, 1}")


def test_turns_are_found_by_their_completion_ids_in_any_order_and_taken_once():
    """Axolotl's async trainer generates batch N+1 (in a thread) before batch N is scored."""
    turns = ToolTurns()
    turns.put([[1, 2], [3]], [{"tool_calls": [], "final": "a"}, {"tool_calls": [], "final": "b"}])
    turns.put([[1, 2], [4]], [{"tool_calls": [], "final": "c"}, {"tool_calls": [], "final": "d"}])
    assert [t["final"] for t in turns.take([[4], [1, 2]])] == ["d", "a"]
    assert [t and t["final"] for t in turns.take([[3], [1, 2], [1, 2], [9]])] == ["b", "c", None, None]
    turns.MAX_KEPT = 2
    turns.put([[5], [6], [7]], [{"tool_calls": [], "final": x} for x in "xyz"])
    assert turns.take([[5], [7]]) == [None, {"tool_calls": [], "final": "z"}]  # the oldest was forgotten


def test_each_recorded_call_gets_its_contained_time_by_name_and_arguments():
    from axolotl_grpo_plugin.observe.tool_turns import add_seconds, masked_fraction
    from axolotl_grpo_plugin.tools import contain
    from axolotl_grpo_rewards.tools import calculator

    tool = contain(calculator)
    tool(expression="1+1")
    tool(expression="6*7")
    batch = [turns_of([{"role": "assistant", "content": "", "tool_calls": [call("6*7"), call("1+1")]}]),
             turns_of([{"role": "assistant", "content": "", "tool_calls": [call("2+2", name="search")]}])]
    add_seconds(batch, [tool])
    first, second = batch[0]["tool_calls"]
    assert 0 <= first["seconds"] < 1 and 0 <= second["seconds"] < 1
    assert "seconds" not in batch[1]["tool_calls"][0]  # an unknown tool never ran
    assert tool.tool_stats.take_seconds() == {}  # taken once
    assert masked_fraction([[1, 1, 0, 0], [1, 1, 1, 1]]) == 0.25 and masked_fraction([]) == 0.0


def _nested(depth: int):
    import json

    return json.loads("[" * depth + "1" + "]" * depth)  # what TRL's JSON parsing of a tool call can give


def _deep_stack(levels: int, work):
    return work() if levels == 0 else _deep_stack(levels - 1, work)


def test_the_models_arguments_never_cost_the_steps_records():
    """Arguments nested 900 deep, an int of 5,000 digits or megabytes of text: each kept as bounded
    text, and the step's records still serialise (the rollout log drops a step it cannot write)."""
    import json

    from axolotl_grpo_plugin.rollouts.log import _json_safe

    for arguments in ({"expression": _nested(900)}, {"expression": 10**5000}, {"expression": "9" * 5_000_000}):
        messages = [{"role": "assistant", "content": "", "tool_calls": [call(arguments["expression"])]},
                    {"role": "tool", "name": "calculator", "content": "error: ..."}]
        record = _deep_stack(150, lambda m=messages: turns_of(m))
        kept = record["tool_calls"][0]["arguments"]
        assert isinstance(kept, str) and len(kept) <= MAX_RESULT_CHARS
        assert _deep_stack(150, lambda r=record: json.dumps(_json_safe({"turns": r})))
    assert turns_of([{"role": "assistant", "tool_calls": [call(_nested(5))]}])["tool_calls"][0]["arguments"] == {
        "expression": _nested(5)}  # plain, shallow JSON is kept as written
