"""Transforms and a reward the broken-config corpus names (tests/data/broken_configs.yaml);
tests/test_broken_configs.py puts this folder on sys.path."""


def no_prompt(cfg, dataset_idx=0):
    """Rows without `prompt`: TRL would fail at the first step with KeyError: 'prompt'."""
    def transform(row):
        return {"question": row["question"], "answer": row["answer"]}
    return transform


def wrong_shape(cfg, dataset_idx=0):
    """A row function that returns a list, not a dict of columns."""
    def transform(row):
        return [row["question"]]
    return transform


def needs_solution(prompts, completions, solution, **kwargs):
    """A reward that reads a `solution` column the GSM8K rows do not have."""
    return [0.0] * len(completions)


def undocumented_tool(expression):
    return expression
