"""Find a class by what a person types: its name, its character, its code point, or words of its name.

    rank_classes("DIGIT ONE", names)       -> [1, …]   best first; exact matches before partial ones
    best_class("U+0041", names)            -> 10       the single class Enter adds, or None

A name's parts are what the sources write: glyph classes "A  U+0041  LATIN CAPITAL LETTER A" (character, code
point, Unicode name, split on two spaces) and ImageNet-style "tench, Tinca tinca" (synonyms, split on ", ").
Tiers, best first (ties: shorter name, then lower id):

    0  the code point ("U+0041", "u+41", "0x41") or the whole name, exactly
    1  one part exactly, any case: "DIGIT ONE", "digit one", "tench"; a single character exactly: "A"
    2  a single character in the other case ("a" when no "a" class exists)
    3  a part starts with the query ("LATIN CAPITAL LETTER A W" …)
    4  every word of the query is a whole word of the name
    5  the name contains the query
"""
from __future__ import annotations

import re

_CODEPOINT = re.compile(r"^(?:u\+|0x)([0-9a-f]{1,6})$", re.IGNORECASE)


def name_parts(name: str) -> list[str]:
    """The parts of a class name one might type whole (see the module docstring)."""
    text = str(name).strip()
    parts = [p.strip() for p in re.split(r" {2,}|, ", text) if p.strip()]
    return parts or [text]


def _code_points(name: str) -> set[int]:
    return {int(m, 16) for m in re.findall(r"\bU\+([0-9A-Fa-f]{4,6})\b", str(name))}


def _tier(query: str, name: str) -> int | None:
    q, text = query.strip(), str(name).strip()
    ql = q.lower()
    m = _CODEPOINT.match(q)
    if m and int(m.group(1), 16) in _code_points(text):
        return 0
    if ql == text.lower() and len(q) > 1 or q == text:
        return 0
    parts = name_parts(text)
    if q in parts:
        return 1
    if len(q) > 1 and ql in (p.lower() for p in parts):
        return 1
    if ql in (p.lower() for p in parts):
        return 2
    if len(q) > 1 and any(p.lower().startswith(ql) for p in parts):
        return 3
    words = re.findall(r"\w+", ql)
    name_words = set(re.findall(r"\w+", text.lower()))
    if words and all(w in name_words for w in words):
        return 4
    if len(q) > 1 and ql in text.lower():
        return 5
    return None


def rank_classes(query: str, names, limit: int | None = None) -> list[int]:
    """Class ids matching ``query``, best first (see the tiers above); [] for a blank query or no match."""
    if not str(query).strip():
        return []
    scored = []
    for i, name in enumerate(names):
        tier = _tier(str(query), name)
        if tier is not None:
            scored.append((tier, len(str(name)), i))
    scored.sort()
    ids = [i for _, _, i in scored]
    return ids if limit is None else ids[:limit]


def best_class(query: str, names) -> int | None:
    """The one class Enter adds: the best of ``rank_classes``, or None when nothing matches."""
    ranked = rank_classes(query, names, limit=1)
    return ranked[0] if ranked else None
