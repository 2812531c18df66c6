"""The sweep page reads a dtviz sweep folder: its table and each metric against τ per schedule (AppTest)."""
from __future__ import annotations

import csv
import json

import dtviz_app
from dtviz.evaluation.sweep import TABLE_COLUMNS, write_csv
from tests.test_app import new_app, ok, steady_state_navigation  # noqa: F401 — the fixture pins st.navigation

PAGE = dtviz_app.view_path("sweep")


def sweep_folder(tmp_path):
    """A table.csv as dtviz sweep writes it: baseline + τ ∈ {0.01, 0.05} × schedules every, last:10."""
    rows = [dict.fromkeys(TABLE_COLUMNS, "") | {"setting": "baseline", "label": "baseline", "fid": "10.5", "is": "3.25"}]
    values = {("every", 0.01): 11.0, ("every", 0.05): 19.0, ("last:10", 0.01): 10.7, ("last:10", 0.05): 12.5}
    for (schedule, tau), fid in values.items():
        rows.append(dict.fromkeys(TABLE_COLUMNS, "") | {"setting": f"tail-tau{tau:g}-{schedule}", "label": "x",
                                                        "mode": "tail", "tau": f"{tau:g}", "schedule": schedule,
                                                        "fid": f"{fid:g}", "is": "3"})
    folder = tmp_path / "sweep"
    folder.mkdir()
    write_csv(str(folder / "table.csv"), rows)
    return folder, values


def test_sweep_page_plots_the_tables_numbers(tmp_path):
    folder, values = sweep_folder(tmp_path)
    at = new_app(swp_folder=str(folder), swp_metric="fid")
    at.run()
    at.switch_page(PAGE).run()
    ok(at)
    assert at.title[0].value == "Sweep table"
    table = at.dataframe[0].value
    assert list(table["setting"])[0] == "baseline" and len(table) == 5
    fig = json.loads(at.get("plotly_chart")[0].proto.spec)
    got = {tr["name"]: (tr["x"], tr["y"]) for tr in fig["data"]}
    with open(folder / "table.csv", newline="") as fh:  # the CSV, read independently
        rows = [r for r in csv.DictReader(fh) if r["setting"] != "baseline"]
    for schedule in ("every", "last:10"):
        mine = sorted((float(r["tau"]), float(r["fid"])) for r in rows if r["schedule"] == schedule)
        assert list(zip(*mine)) == [tuple(got[schedule][0]), tuple(got[schedule][1])]
    assert "baseline 10.5" in got  # the baseline line, named in the legend
    assert "kid" not in set(table.columns) and {"fid", "is"} <= set(table.columns)  # not computed: no empty column


def test_sweep_page_refuses_in_one_sentence(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    at = new_app(swp_folder=str(empty))
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception
    text = " ".join(e.value for e in at.error)
    assert "table.csv" in text and str(tmp_path) not in text
    at = new_app(swp_folder="/etc")
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception and at.error and "/etc" not in " ".join(e.value for e in at.error).replace("etc", "")
