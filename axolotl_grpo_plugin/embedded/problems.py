"""Seeded generator of GSM8K-style arithmetic word problems.

Rows look like ``openai/gsm8k`` (``{"question", "answer"}`` with ``<<a*b=c>>``
calculator annotations and a final ``#### N`` line), so the plugin's dataset
transforms and rewards can be exercised offline on data with the same shape.
Answers are non-negative integers; some are >= 1000 so that the ``1,000``
thousands separators used in the step text have to be handled.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable

from axolotl_grpo_rewards.gsm8k import SYSTEM_PROMPT as R1_SYSTEM_PROMPT  # noqa: F401 - the cookbook prompt, one copy


NAMES = [
    "Ava", "Ben", "Carla", "Dev", "Emma", "Farid", "Grace", "Hugo", "Ines", "Jamal",
    "Kira", "Liam", "Maya", "Noah", "Olga", "Pedro", "Quinn", "Rosa", "Sam", "Tariq",
]
GOODS = ["apples", "pens", "notebooks", "books", "shirts", "toys", "candles", "mugs"]
TREATS = ["candies", "stickers", "cookies", "marbles", "cards", "grapes"]
FRUITS = ["apples", "oranges", "pears", "plums", "peaches", "lemons"]
PRODUCTS = ["bottles", "chairs", "boxes", "bricks", "bolts", "toys"]
BAKED = ["cookies", "muffins", "rolls", "bagels", "cupcakes"]
PURCHASES = ["bike", "tablet", "guitar", "camera", "tent", "desk"]

_ANNOTATION = re.compile(r"<<[^>]*>>")


def _fmt(value: int) -> str:
    """Thousands separators like GSM8K's prose (``1,500``)."""
    return f"{value:,}"


def _calc(expr: str, value: int) -> str:
    """``3*4 = <<3*4=12>>12``: the expression, its GSM8K annotation and the result."""
    return f"{expr} = <<{expr}={value}>>{_fmt(value)}"


Problem = tuple[str, list[str], int]


def _shopping(rng: random.Random) -> Problem:
    name = rng.choice(NAMES)
    first, second = rng.sample(GOODS, 2)
    a, p, b, q = rng.randint(2, 12), rng.randint(2, 25), rng.randint(2, 12), rng.randint(2, 25)
    cost1, cost2 = a * p, b * q
    question = (
        f"{name} buys {a} {first} for ${p} each and {b} {second} for ${q} each. "
        f"How many dollars does {name} spend in total?"
    )
    steps = [
        f"The {first} cost {_calc(f'{a}*{p}', cost1)} dollars.",
        f"The {second} cost {_calc(f'{b}*{q}', cost2)} dollars.",
        f"In total {name} spends {_calc(f'{cost1}+{cost2}', cost1 + cost2)} dollars.",
    ]
    return question, steps, cost1 + cost2


def _ages(rng: random.Random) -> Problem:
    a, b, c = rng.sample(NAMES, 3)
    age, times = rng.randint(3, 15), rng.randint(2, 5)
    older = age * times
    younger_by = rng.randint(1, older - 1)
    question = (
        f"{a} is {age} years old. {b} is {times} times as old as {a}, and {c} is "
        f"{younger_by} years younger than {b}. How old is {c}?"
    )
    steps = [
        f"{b} is {_calc(f'{age}*{times}', older)} years old.",
        f"{c} is {_calc(f'{older}-{younger_by}', older - younger_by)} years old.",
    ]
    return question, steps, older - younger_by


def _distance(rng: random.Random) -> Problem:
    name = rng.choice(NAMES)
    s1, h1, s2, h2 = rng.randint(30, 70), rng.randint(1, 6), rng.randint(30, 70), rng.randint(1, 6)
    d1, d2 = s1 * h1, s2 * h2
    question = (
        f"{name} drives at {s1} miles per hour for {h1} hours, then at {s2} miles per hour "
        f"for {h2} hours. How many miles does {name} drive in total?"
    )
    steps = [
        f"First {name} drives {_calc(f'{s1}*{h1}', d1)} miles.",
        f"Then {name} drives {_calc(f'{s2}*{h2}', d2)} miles.",
        f"Altogether that is {_calc(f'{d1}+{d2}', d1 + d2)} miles.",
    ]
    return question, steps, d1 + d2


def _sharing(rng: random.Random) -> Problem:
    name, treat = rng.choice(NAMES), rng.choice(TREATS)
    friends, each = rng.randint(2, 9), rng.randint(4, 30)
    total, eaten = friends * each, rng.randint(1, each - 1)
    question = (
        f"{name} has {total} {treat} and shares them equally among {friends} friends. "
        f"Each friend then uses {eaten} of them. How many {treat} does each friend have left?"
    )
    steps = [
        f"Each friend gets {_calc(f'{total}/{friends}', each)} {treat}.",
        f"Each friend has {_calc(f'{each}-{eaten}', each - eaten)} {treat} left.",
    ]
    return question, steps, each - eaten


def _factory(rng: random.Random) -> Problem:
    product = rng.choice(PRODUCTS)
    rate, hours, days = rng.randint(10, 120), rng.randint(4, 12), rng.randint(2, 7)
    daily = rate * hours
    question = (
        f"A factory makes {rate} {product} per hour and runs {hours} hours a day. "
        f"How many {product} does it make in {days} days?"
    )
    steps = [
        f"Each day it makes {_calc(f'{rate}*{hours}', daily)} {product}.",
        f"In {days} days it makes {_calc(f'{daily}*{days}', daily * days)} {product}.",
    ]
    return question, steps, daily * days


def _savings(rng: random.Random) -> Problem:
    name, purchase = rng.choice(NAMES), rng.choice(PURCHASES)
    weekly, weeks = rng.randint(5, 60), rng.randint(4, 30)
    saved = weekly * weeks
    spent = rng.randint(1, saved)
    question = (
        f"{name} saves ${weekly} every week for {weeks} weeks, then spends ${_fmt(spent)} "
        f"on a {purchase}. How many dollars does {name} have left?"
    )
    steps = [
        f"{name} saves {_calc(f'{weekly}*{weeks}', saved)} dollars.",
        f"After the {purchase}, {name} has {_calc(f'{saved}-{spent}', saved - spent)} dollars left.",
    ]
    return question, steps, saved - spent


def _gift(rng: random.Random) -> Problem:
    name, giver = rng.sample(NAMES, 2)
    treat = rng.choice(TREATS)
    have, given = rng.randint(5, 1500), rng.randint(2, 600)
    question = (
        f"{name} has {_fmt(have)} {treat}. {giver} gives {name} {given} more. "
        f"How many {treat} does {name} have now?"
    )
    steps = [f"{name} has {_calc(f'{have}+{given}', have + given)} {treat} now."]
    return question, steps, have + given


def _bakery(rng: random.Random) -> Problem:
    baked = rng.choice(BAKED)
    morning, afternoon, per_tray = rng.randint(2, 9), rng.randint(2, 9), rng.randint(6, 24)
    first, second = morning * per_tray, afternoon * per_tray
    total = first + second
    sold = rng.randint(1, total)
    question = (
        f"A bakery bakes {morning} trays of {per_tray} {baked} in the morning and {afternoon} "
        f"trays of {per_tray} {baked} in the afternoon. It sells {sold} {baked}. "
        f"How many {baked} are left?"
    )
    steps = [
        f"In the morning it bakes {_calc(f'{morning}*{per_tray}', first)} {baked}.",
        f"In the afternoon it bakes {_calc(f'{afternoon}*{per_tray}', second)} {baked}.",
        f"That is {_calc(f'{first}+{second}', total)} {baked} in total.",
        f"After selling, {_calc(f'{total}-{sold}', total - sold)} {baked} are left.",
    ]
    return question, steps, total - sold


def _wages(rng: random.Random) -> Problem:
    name = rng.choice(NAMES)
    wage, hours, days, weeks = rng.randint(8, 40), rng.randint(3, 9), rng.randint(2, 6), rng.randint(2, 8)
    daily = wage * hours
    weekly = daily * days
    question = (
        f"{name} earns ${wage} per hour and works {hours} hours a day, {days} days a week. "
        f"How many dollars does {name} earn in {weeks} weeks?"
    )
    steps = [
        f"Each day {name} earns {_calc(f'{wage}*{hours}', daily)} dollars.",
        f"Each week {name} earns {_calc(f'{daily}*{days}', weekly)} dollars.",
        f"In {weeks} weeks {name} earns {_calc(f'{weekly}*{weeks}', weekly * weeks)} dollars.",
    ]
    return question, steps, weekly * weeks


def _harvest(rng: random.Random) -> Problem:
    name, fruit = rng.choice(NAMES), rng.choice(FRUITS)
    baskets, per_basket, kept = rng.randint(2, 8), rng.randint(3, 25), rng.randint(1, 20)
    picked = baskets * per_basket + kept
    monday = rng.randint(1, picked - 1)
    tuesday = picked - monday
    question = (
        f"{name} picks {monday} {fruit} on Monday and {tuesday} {fruit} on Tuesday. "
        f"{name} keeps {kept} and splits the rest equally into {baskets} baskets. "
        f"How many {fruit} are in each basket?"
    )
    rest = picked - kept
    steps = [
        f"{name} picks {_calc(f'{monday}+{tuesday}', picked)} {fruit}.",
        f"The rest is {_calc(f'{picked}-{kept}', rest)} {fruit}.",
        f"Each basket gets {_calc(f'{rest}/{baskets}', per_basket)} {fruit}.",
    ]
    return question, steps, per_basket


TEMPLATES: list[Callable[[random.Random], Problem]] = [
    _shopping, _ages, _distance, _sharing, _factory, _savings, _gift, _bakery, _wages, _harvest,
]


# --- the embedded demo's task: two steps on small numbers ------------------------
# A 0.3M-parameter model pre-trained for two minutes cannot multiply 3-digit numbers,
# so GRPO would have no correct answer to reinforce. These keep every operand a single
# digit and every result at most 22 (about 140 distinct arithmetic facts, which two minutes
# of pre-training learn) and still read like GSM8K; every problem takes exactly two steps,
# so a solution can stop one step short, the mistake the demo's base makes. The numbers of
# the two shapes that several stories share are drawn in one place, so their ranges (the
# facts the base must learn) are set once.

def _times_plus(rng: random.Random) -> tuple[int, int, int]:
    """a, b, c of an a*b + c problem."""
    return rng.randint(2, 4), rng.randint(2, 4), rng.randint(1, 6)


def _plus_minus(rng: random.Random) -> tuple[int, int, int]:
    """a, b, c of an a + b - c problem (the result stays positive)."""
    first, second = rng.randint(2, 6), rng.randint(2, 6)
    return first, second, rng.randint(1, first + second - 1)


def _demo_boxes(rng: random.Random) -> Problem:
    name, fruit = rng.choice(NAMES), rng.choice(FRUITS)
    boxes, per_box, loose = _times_plus(rng)
    packed = boxes * per_box
    question = (f"{name} has {boxes} boxes of {per_box} {fruit} and {loose} more {fruit}. "
                f"How many {fruit} does {name} have?")
    steps = [f"The boxes hold {_calc(f'{boxes}*{per_box}', packed)} {fruit}.",
             f"{name} has {_calc(f'{packed}+{loose}', packed + loose)} {fruit}."]
    return question, steps, packed + loose


def _demo_market(rng: random.Random) -> Problem:
    name, fruit = rng.choice(NAMES), rng.choice(FRUITS)
    have, bought, sold = _plus_minus(rng)
    total = have + bought
    question = (f"{name} has {have} {fruit}, buys {bought} more and sells {sold}. "
                f"How many {fruit} does {name} have left?")
    steps = [f"{name} has {_calc(f'{have}+{bought}', total)} {fruit}.",
             f"After selling, {name} has {_calc(f'{total}-{sold}', total - sold)} {fruit} left."]
    return question, steps, total - sold


def _demo_sharing(rng: random.Random) -> Problem:
    name, treat = rng.choice(NAMES), rng.choice(TREATS)
    friends, each = rng.randint(2, 4), rng.randint(2, 6)
    eaten = rng.randint(1, each - 1)
    total = friends * each
    question = (f"{name} shares {total} {treat} equally among {friends} friends. Each friend eats {eaten}. "
                f"How many {treat} does each friend have left?")
    steps = [f"Each friend gets {_calc(f'{total}/{friends}', each)} {treat}.",
             f"Each friend has {_calc(f'{each}-{eaten}', each - eaten)} {treat} left."]
    return question, steps, each - eaten


def _demo_reading(rng: random.Random) -> Problem:
    name = rng.choice(NAMES)
    per_day, days, extra = _times_plus(rng)
    read = per_day * days
    question = (f"{name} reads {per_day} pages a day for {days} days and then {extra} more pages. "
                f"How many pages does {name} read?")
    steps = [f"In {days} days {name} reads {_calc(f'{per_day}*{days}', read)} pages.",
             f"In all {name} reads {_calc(f'{read}+{extra}', read + extra)} pages."]
    return question, steps, read + extra


def _demo_gift(rng: random.Random) -> Problem:
    name, giver = rng.sample(NAMES, 2)
    treat = rng.choice(TREATS)
    have, given, eaten = _plus_minus(rng)
    total = have + given
    question = (f"{name} has {have} {treat}. {giver} gives {name} {given} more, and {name} eats {eaten}. "
                f"How many {treat} does {name} have now?")
    steps = [f"{name} gets to {_calc(f'{have}+{given}', total)} {treat}.",
             f"{name} has {_calc(f'{total}-{eaten}', total - eaten)} {treat} now."]
    return question, steps, total - eaten


DEMO_TEMPLATES: list[Callable[[random.Random], Problem]] = [
    _demo_boxes, _demo_market, _demo_sharing, _demo_reading, _demo_gift,
]


def generate_problems(n: int, seed: int, exclude: Iterable[str] = (),
                      templates: list[Callable[[random.Random], Problem]] = TEMPLATES) -> list[dict]:
    """``n`` distinct GSM8K-shaped rows, reproducible from ``seed``.

    Questions listed in ``exclude`` are skipped, which is how a held-out split
    is kept disjoint from a training split. ``templates``: ``TEMPLATES`` (multi-step,
    up to 4-digit numbers) or ``DEMO_TEMPLATES`` (the demo's two-step task).
    """
    rng = random.Random(seed)
    seen = set(exclude)
    rows: list[dict] = []
    attempts = 0
    while len(rows) < n:
        attempts += 1
        if attempts > 50 * n + 1000:
            raise RuntimeError(f"could not generate {n} distinct problems")
        question, steps, answer = rng.choice(templates)(rng)
        if question in seen:
            continue
        seen.add(question)
        rows.append({"question": question, "answer": "\n".join(steps) + f"\n#### {answer}"})
    return rows


def final_answer(row: dict) -> str:
    """The number after ``####`` in a GSM8K answer (no thousands separators)."""
    return row["answer"].rsplit("####", 1)[1].strip().replace(",", "")


def format_solution(row: dict) -> str:
    """The ideal R1-format completion: annotation-free steps, then the bare answer."""
    steps = row["answer"].rsplit("####", 1)[0].strip()
    reasoning = _ANNOTATION.sub("", steps)
    return f"<reasoning>\n{reasoning}\n</reasoning>\n<answer>\n{final_answer(row)}\n</answer>\n"
