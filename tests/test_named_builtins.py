"""Named built-in models (dtviz.sources.loading.BUILTINS): each name opens its own shipped folder with that folder's
own numbers (taken from its card.json, never typed here)."""
import json
import os

import numpy as np
import pytest

import dtviz
from dtviz.builtin.card import table_stats
from dtviz.cli.main import main as cli_main
from dtviz.sources.loading import BUILTIN, BUILTINS, builtin_dir


def test_registry_names_folders_and_descriptions():
    assert BUILTIN in BUILTINS and "builtin-wide" in BUILTINS
    assert builtin_dir("builtin").endswith(os.path.join("assets", "builtin"))
    assert builtin_dir("builtin-wide").endswith(os.path.join("assets", "builtin-wide"))
    for b in BUILTINS.values():
        assert b.description and "\n" not in b.description and "(" not in b.summary
        assert b.description == (f"{b.summary} ({b.more})" if b.more else b.summary)
        assert os.path.isfile(os.path.join(b.path, "model.safetensors")), b.name
        for name in ("classifier.safetensors", "config.json", "card.json", "README.md", "samples.png"):
            assert os.path.isfile(os.path.join(b.path, name)), (b.name, name)
    with pytest.raises(dtviz.DtvizInputError, match="built-in models"):
        builtin_dir("builtin-narrow")


@pytest.mark.parametrize("name", list(BUILTINS))
def test_each_name_opens_its_folder_with_its_card_numbers(name):
    src = dtviz.load(name)
    assert src.info.name == name
    by_path = dtviz.load(builtin_dir(name))
    np.testing.assert_array_equal(src.embeddings(), by_path.embeddings())
    card = json.load(open(os.path.join(builtin_dir(name), "card.json")))
    for key, value in table_stats(src).items():
        assert card["t0"][key] == pytest.approx(value, rel=1e-5), (name, key)
    assert src.num_classes == card["num_classes"] and src.dim == card["dim"]


def test_cli_stats_takes_the_name(capsys):
    assert cli_main(["stats", "builtin-wide", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    card = json.load(open(os.path.join(builtin_dir("builtin-wide"), "card.json")))
    assert out["cosine"]["mean"] == pytest.approx(card["t0"]["cosine_mean"], rel=1e-5)
