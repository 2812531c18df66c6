"""The paper's values (dtviz.reference) against the paper's own text: the tables are parsed from the reference
markdown here, independently of the transcription, so a typo in dtviz/reference/paper_values.py fails."""
import os
import re

import pytest

from dtviz.errors import DtvizInputError
from dtviz.reference import compare_rows, family_reference, headline, paper_rows, pruning_markers
from dtviz.reference.paper_values import TABLE1, TABLE2, TABLE4, TABLE5

PAPER = os.environ.get("DTVIZ_PAPER_MD", "/work/shared/reference/hidden-semantic-bottleneck-paper.md")
pytestmark = pytest.mark.skipif(not os.path.isfile(PAPER), reason="the paper's reference markdown is not on this machine")


def _clean(cell: str) -> str:
    """A printed cell without markup: bold tags, superscripts and $…$ math delimiters."""
    cell = re.sub(r"<sup>.*?</sup>", "", cell)
    cell = re.sub(r"</?b>", "", cell).replace("$", "").replace("\\tau", "τ")
    return re.sub(r"\s+", " ", cell).strip()


def _table_lines(caption_start: str, header_start: str) -> list[list[str]]:
    """The tab-separated rows after the line starting with ``caption_start``, from the header on, until a blank line."""
    lines = open(PAPER, encoding="utf-8").read().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(caption_start))
    head = next(i for i in range(start, len(lines)) if lines[i].startswith(header_start))
    rows = []
    for line in lines[head:]:
        if not line.strip():
            break
        rows.append([_clean(c) for c in line.split("\t")])
    return rows


def test_table1_matches_the_paper():
    rows = _table_lines("Table 1:", "Embedding Metrics")
    assert tuple(rows[0][1:]) == TABLE1["columns"]
    by_label = {r[0].split(" (")[0]: tuple(r[1:]) for r in rows[1:]}
    assert by_label["Condition Dim"] == TABLE1["rows"]["d"]
    assert by_label["PR"] == TABLE1["rows"]["pr"]
    assert by_label["nPR"] == TABLE1["rows"]["npr"]
    assert by_label["Cosine Sim."] == TABLE1["rows"]["cosine"]


@pytest.mark.parametrize("caption, table", [("Table 4:", TABLE4), ("Table 5:", TABLE5)])
def test_tables_4_and_5_match_the_paper(caption, table):
    rows = _table_lines(caption, "Metrics")
    assert tuple(rows[0][1:-1]) == table["columns"]
    for row in rows[1:]:
        metric = "cosine" if row[0].startswith("Cosine") else "npr"
        part = row[-1].replace(" ", "")
        assert tuple(row[1:-1]) == table["rows"][(metric, part)], (caption, metric, part)


def test_table2_matches_the_paper():
    rows = _table_lines("Table 2:", "Prune")[1:]
    prune = ""
    transcribed = []
    for row in rows:
        prune = row[0] or prune
        threshold = row[1].replace("( t", "(t")
        transcribed.append((prune, threshold, *row[2:]))
    assert tuple(transcribed) == TABLE2["rows"]


def test_known_answers_of_the_loader():
    assert headline("cosine", model="DiT-XL/2")["label"] == "paper's DiT-XL/2: 0.9001"
    assert headline("cosine", model="DiT")["value"] == 0.9001
    assert headline("npr", model="DiT-XL/2")["value"] == pytest.approx(0.1047)
    assert headline("npr", model="REPA", part="y")["value"] == pytest.approx(0.4160)
    assert headline("cosine", model="UViT")["table"] == 4
    assert headline("pr", model="MDSGen")["value"] == 104.22
    assert family_reference("sit") == "SiT-XL/2" and family_reference("matrix") == "DiT-XL/2"
    t2 = paper_rows(2)
    assert [r["removed_dims"] for r in t2 if r["prune"] == "head"] == [2, 8]
    assert t2[0]["baseline"] and t2[0]["fid"] == 7.1694
    assert {r["schedule"] for r in t2 if r["tau"] == 0.01} == {"every", "first", "last"}
    assert [m["tau"] for m in pruning_markers()] == [0.01, 0.02, 0.05, 5.0]
    assert len(paper_rows(4, part="y")) == 7 and len(paper_rows(5)) == 14
    assert [r["source"] for r in compare_rows(["DiT", "REPA-XL"])] == ["paper: DiT-XL/2", "paper: REPA-XL"]
    with pytest.raises(DtvizInputError, match="tables"):
        paper_rows(3)
    with pytest.raises(DtvizInputError, match="reports no"):
        headline("pr", model="UViT")


def test_reported_range_is_the_lowest_and_highest_printed_value():
    from dtviz.reference import reported_range

    assert reported_range("cosine") == "0.9001–0.9999"  # DiT-XL/2 … MDSGen, Table 1 as printed
    assert reported_range("cosine", table=4) == "0.00165–0.9946"  # Table 4 includes UViT's label part
    assert reported_range("cosine", table=4, part="y", conditioning="AdaLN") == "0.5194–0.8540"  # REPA … MDT, y alone
