"""Pins for numbers in prose: a test that counts something asserts the docs say that count (whitespace-folded)."""
from __future__ import annotations

import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def documented(rel_path: str) -> str:
    with open(os.path.join(ROOT, rel_path), encoding="utf-8") as fh:
        return re.sub(r"\s+", " ", fh.read())


def assert_documented(rel_path: str, phrase: str) -> None:
    assert phrase in documented(rel_path), f"{rel_path} should say {phrase!r} (the count this test measures)"
