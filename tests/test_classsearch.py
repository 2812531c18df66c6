"""Class search (dtviz.analysis.classsearch): exact name or code point first; Enter adds one class."""
import dtviz
from dtviz.analysis.classsearch import best_class, name_parts, rank_classes

NAMES = dtviz.load("builtin").class_names  # glyph names: "A  U+0041  LATIN CAPITAL LETTER A"


def idx(prefix: str) -> int:
    return next(i for i, n in enumerate(NAMES) if n.endswith("  " + prefix) or n.split("  ")[1] == prefix)


def test_exact_unicode_name_is_the_single_best_match():
    one = idx("DIGIT ONE")
    assert best_class("DIGIT ONE", NAMES) == one
    assert best_class("digit one", NAMES) == one
    ranked = rank_classes("DIGIT ONE", NAMES)
    assert ranked[0] == one and all("DIGIT ONE" != NAMES[i].split("  ")[-1] for i in ranked[1:])
    a = idx("LATIN CAPITAL LETTER A")
    assert best_class("LATIN CAPITAL LETTER A", NAMES) == a
    # the other "LATIN CAPITAL LETTER A…" classes rank after it
    others = [i for i, n in enumerate(NAMES) if "LATIN CAPITAL LETTER A" in n and i != a]
    ranked = rank_classes("LATIN CAPITAL LETTER A", NAMES)
    assert ranked[0] == a and set(others) <= set(ranked[1:])


def test_code_point_and_character():
    a = idx("U+0041")
    assert best_class("U+0041", NAMES) == a == best_class("u+41", NAMES) == best_class("0x41", NAMES)
    assert rank_classes("U+0041", NAMES) == [a]
    assert best_class("A", NAMES) == a and best_class("a", NAMES) == idx("LATIN SMALL LETTER A")
    assert best_class("1", NAMES) == idx("DIGIT ONE")


def test_partial_and_no_match():
    assert NAMES[best_class("LATIN SMALL LETTER", NAMES)].split("  ")[-1].startswith("LATIN SMALL LETTER")
    assert best_class("zzzz no such class", NAMES) is None and rank_classes("   ", NAMES) == []


def test_synonym_names_and_known_order():
    names = ["tench, Tinca tinca", "goldfish, Carassius auratus", "great white shark, white shark", "tiger shark",
             "hammerhead, hammerhead shark"]
    assert name_parts(names[0]) == ["tench", "Tinca tinca"]
    assert best_class("white shark", names) == 2  # a synonym exactly, before names that merely contain it
    assert rank_classes("shark", names) == [3, 4, 2]  # whole words, shorter names first
    assert best_class("Carassius", names) == 1  # a part starts with it
