"""Helpers shared by the reward modules: the text of a completion, and numbers in answers.

Rewards run on adversarial model output, so every helper here is total (never
raises, whatever it is given) and linear in the length of its input.
"""

from __future__ import annotations

from decimal import Decimal


# A lone answer number is short; anything longer is refused before it is read.
MAX_NUMBER_CHARS = 100
BOX = "\\boxed{"


def completion_text(completion: object) -> str:
    """The generated text, whether TRL passed a plain string or chat messages.

    For a message list (or a single message dict) the content of the last
    assistant message is used, or of the last message when none says it is the
    assistant's. Anything that holds no string content gives "".
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and len(completion) == 1 and isinstance(completion[0], dict):
        return _message_content(completion[0])  # TRL's usual shape, fast
    if isinstance(completion, dict):
        return _message_content(completion)
    if isinstance(completion, (list, tuple)):
        last_message = None
        for message in reversed(completion):
            if not isinstance(message, dict):
                continue
            if message.get("role") == "assistant":
                return _message_content(message)
            if last_message is None:
                last_message = message
        if last_message is not None:
            return _message_content(last_message)
    return ""


def _message_content(message: dict) -> str:
    content = message.get("content")
    return content if isinstance(content, str) else ""


def _number_parts(text: object) -> tuple[str, str, str] | None:
    """(sign, integer digits, fraction digits) of a lone number, or None.

    Accepts the ways models write answers: surrounding whitespace and ``**bold**``,
    a leading ``$`` (before or after the sign), a leading ``-``/``+``, thousands
    commas in groups of three, a trailing ``%`` and a trailing sentence ``.``.
    Only ASCII digits count; no exponents, no words.
    """
    if not isinstance(text, str):
        return None
    s = text.strip()
    if len(s) > MAX_NUMBER_CHARS:
        return None
    if len(s) >= 4 and s.startswith("**") and s.endswith("**"):
        s = s[2:-2].strip()
    if s.endswith("."):
        s = s[:-1]
    if s.endswith("%"):
        s = s[:-1]
    has_dollar = s.startswith("$")
    if has_dollar:
        s = s[1:]
    sign = s[:1] if s[:1] in ("-", "+") else ""
    s = s[len(sign):]
    if not has_dollar and s.startswith("$"):
        s = s[1:]
    integer, dot, fraction = s.partition(".")
    integer = _ungroup_thousands(integer)
    if integer is None or not (integer or fraction) or (dot and not fraction):
        return None
    if not (_all_ascii_digits(integer) and _all_ascii_digits(fraction)):
        return None
    return ("-" if sign == "-" else "", integer, fraction)


def _ungroup_thousands(integer: str) -> str | None:
    """Digits of ``1,234,567`` without commas; None when the commas are not thousands groups."""
    if "," not in integer:
        return integer
    head, *groups = integer.split(",")
    if not 1 <= len(head) <= 3 or any(len(group) != 3 for group in groups):
        return None
    return head + "".join(groups)


def _all_ascii_digits(s: str) -> bool:
    return s == "" or (s.isascii() and s.isdigit())


def parse_number(text: object) -> Decimal | None:
    """The exact value of a lone number (``"$1,000"`` -> ``Decimal(1000)``), or None.

    Decimal, not float, so that equality is exact: ``1000 == 1000.0`` but
    ``18 != 18.5`` and long numbers do not collide by rounding.
    """
    if isinstance(text, str) and len(text) <= MAX_NUMBER_CHARS and text.isascii() and text.isdigit():
        return Decimal(text)  # the usual answer, fast
    parts = _number_parts(text)
    if parts is None:
        return None
    sign, integer, fraction = parts
    return Decimal(f"{sign}{integer or '0'}.{fraction or '0'}")


def normalize_number(text: object) -> str | None:
    """Canonical spelling of a lone number (``" $1,000.50 "`` -> ``"1000.5"``), or None.

    For dataset answers: equal numbers get equal strings, with no leading zeros,
    no trailing fraction zeros, and no sign on zero.
    """
    parts = _number_parts(text)
    if parts is None:
        return None
    sign, integer, fraction = parts
    integer = integer.lstrip("0") or "0"
    fraction = fraction.rstrip("0")
    if integer == "0" and not fraction:
        return "0"
    return f"{sign}{integer}.{fraction}" if fraction else f"{sign}{integer}"


def box_end(text: str, start: int, limit: int) -> int:
    """The index after the ``}`` closing the ``\\boxed{`` at ``start``; -1 when it is not closed
    within ``limit`` characters (a bound: model output is adversarial)."""
    depth = 0
    for i in range(start + len(BOX) - 1, min(len(text), start + limit)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return i + 1
    return -1
