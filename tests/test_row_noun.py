"""What the rows are (dtviz.sources.base.row_noun) and how the figure builders and the cosine CSV name them: classes
for class-conditional models, prompts for text-to-image pipelines (tests/test_t2i_app.py), conditions for matrices
and captured trajectories; without a noun in the context the builders say "class" as before."""
import numpy as np

import dtviz
from dtviz import plots
from dtviz.sources.base import row_noun
from dtviz.sources.trajectory import Trajectory


def test_row_noun_per_source_kind(tmp_path):
    assert row_noun(dtviz.load()) == ("class", "classes")  # the built-in class-conditional model
    np.save(tmp_path / "m.npy", np.random.default_rng(0).normal(size=(5, 8)).astype(np.float32))
    assert row_noun(dtviz.load(str(tmp_path / "m.npy"))) == ("condition", "conditions")
    path = Trajectory(np.ones((4, 3, 8), np.float32), list("abcd"), np.arange(3.0), np.zeros(4, bool)).save(
        str(tmp_path / "t.traj.npz"))
    assert row_noun(dtviz.load(path)) == ("condition", "conditions")


def test_builders_name_the_rows_from_the_context():
    rng = np.random.default_rng(0)
    E = rng.normal(size=(6, 16))
    C = np.corrcoef(E)
    names = [f"p{i}" for i in range(6)]
    prompts = {"model": "m", "row": "prompt", "rows": "prompts"}
    fig = plots.cosine_heatmap(C, names, prompts)
    assert "between prompts (6×6)" in fig.layout.title.text and fig.layout.xaxis.title.text == "prompt id"
    assert "row=" not in fig.layout.title.text and "prompts=" not in fig.layout.title.text  # not in the settings line
    assert "between classes" in plots.cosine_heatmap(C, names, {"model": "m"}).layout.title.text  # unchanged default
    sub = plots.cosine_submatrix(C, [0, 1, 2], names, prompts)
    assert sub.layout.title.text.startswith("Cosine similarity of c, 3 prompts") and sub.layout.yaxis.title.text == "prompt"
    dim = plots.dim_across_classes(E[:, 0], names, 0, prompts)
    assert "(prompt %{customdata[0]})" in dim.data[0].hovertemplate and dim.layout.xaxis.title.text == "prompt id"
    assert "across 6 prompts" in dim.layout.title.text
    assert "across prompts" in plots.variance_per_dim(E.var(0), prompts).layout.title.text
    nb = plots.neighbour_bars(names[:2], [0.9, 0.8], names[:2], [0.9, 0.7], prompts, query="p0")
    assert nb.layout.title.text.startswith("Nearest prompts to p0")
    assert list(plots.cosine_frame(C, names, row="prompt").columns)[:2] == ["prompt", "p0"]
    assert list(plots.cosine_frame(C, names).columns)[0] == "class"


def test_stats_json_says_what_the_rows_are(tmp_path, capsys):
    import json

    from dtviz.cli.main import main

    np.save(tmp_path / "m.npy", np.random.default_rng(0).normal(size=(5, 8)).astype(np.float32))
    assert main(["stats", str(tmp_path / "m.npy"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["rows"] == "conditions" and out["num_classes"] == 5  # today's key counts the rows, whatever they are
    assert main(["stats", "--json"]) == 0  # the built-in model
    assert json.loads(capsys.readouterr().out)["rows"] == "classes"
