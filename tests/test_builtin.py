"""The shipped built-in model: loads through the native loader, samples deterministically, its
classifier works, its card's numbers are the measured ones, and the training script runs."""
import dataclasses
import json
import os

import numpy as np
import pytest
import torch

import dtviz
from dtviz.builtin.card import load_classifier, table_stats
from dtviz.builtin.glyphs import class_name, render_dataset, select_classes
from dtviz.sampling.generate import Generator, SampleSettings
from dtviz.sources.loading import BUILTIN_DIR
from dtviz.models.dit import DiT, DiTConfig
from safetensors.torch import load_file

CONFIG = json.load(open(os.path.join(BUILTIN_DIR, "config.json")))


def test_shipped_files_and_size_budget():
    total = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(BUILTIN_DIR) for f in fs)
    assert total <= 72 * 2 ** 20  # width 512, depth 2 (10.4 M params, float32) + classifier + embedder snapshots
    snaps = os.listdir(os.path.join(BUILTIN_DIR, "snapshots"))
    assert 6 <= len(snaps) <= 16


def test_loads_through_native_loader_with_real_keys():
    src = dtviz.load("builtin")
    assert src.family.key == "sit" and src.t0 == 0.0
    assert src.num_classes == len(CONFIG["class_names"]) >= 100
    assert src.info.can_sample
    state = load_file(os.path.join(BUILTIN_DIR, "model.safetensors"))
    for key in ("x_embedder.proj.weight", "pos_embed", "t_embedder.mlp.0.weight", "t_embedder.mlp.2.bias",
                "y_embedder.embedding_table.weight", "blocks.0.attn.qkv.weight", "blocks.0.mlp.fc1.weight",
                "blocks.0.adaLN_modulation.1.weight", "final_layer.linear.weight", "final_layer.adaLN_modulation.1.weight"):
        assert key in state, key
    assert state["y_embedder.embedding_table.weight"].shape[0] == src.num_classes + 1  # + null row
    # the names say what the class is
    assert CONFIG["class_names"][0] == class_name(CONFIG["codepoints"][0])
    assert "U+" in src.class_names[10] and "DIGIT" in src.class_names[0]


def test_seeded_sample_is_bit_identical_and_noise_is_per_sample():
    gen = Generator(dtviz.load("builtin"))
    settings = SampleSettings(steps=6, seed=11)
    a = gen.sample([1, 2, 3, 4], settings)
    b = gen.sample([1, 2, 3, 4], settings)
    assert np.array_equal(a, b)
    # sample 2 computed alone (same index) equals the one computed in the batch
    c = gen.sample([3], settings, indices=[2])
    np.testing.assert_allclose(c[0], a[2], atol=1e-5)
    assert not np.array_equal(gen.sample([1, 2, 3, 4], SampleSettings(steps=6, seed=12)), a)


def test_classifier_accuracy_on_fresh_renders():
    clf = load_classifier(BUILTIN_DIR)
    cps = CONFIG["codepoints"][:64]
    x, y = render_dataset(cps, 2, seed=4242)  # jitter the classifier has never seen
    acc = (clf.predict(torch.from_numpy(x)).numpy() == y).mean()
    assert acc >= 0.9


def test_class_selection_is_reproducible():
    assert select_classes(40, min_distance=CONFIG["training"]["min_distance"]) == CONFIG["codepoints"][:40]


def test_card_numbers_are_the_measured_ones():
    card = json.load(open(os.path.join(BUILTIN_DIR, "card.json")))
    again = table_stats(dtviz.load("builtin"))
    for key, value in again.items():
        assert card["t0"][key] == pytest.approx(value, rel=1e-5), key
    readme = open(os.path.join(BUILTIN_DIR, "README.md")).read()
    assert f"{card['t0']['cosine_mean']:.4f}" in readme
    assert f"{100 * card['class_accuracy']:.1f}%" in readme
    assert card["class_accuracy"] == CONFIG["metrics"].get("card_class_accuracy", card["class_accuracy"])


def test_training_script_runs_a_few_steps(tmp_path):
    from scripts.train_builtin import main

    out = tmp_path / "out"
    argv = ["--work", str(tmp_path / "work"), "--out", str(out), "--num-classes", "8", "--train-per-class", "8",
            "--heldout-per-class", "2", "--steps", "6", "--eval-every", "6", "--classifier-epochs", "1",
            "--batch-size", "16", "--sample-steps", "2", "--threads", "1"]
    assert main(argv) == 0
    cfg = json.load(open(out / "config.json"))
    assert cfg["family"] == "sit" and len(cfg["class_names"]) == 8
    model = DiT(DiTConfig(**cfg["model"]))
    model.load_state_dict(load_file(str(out / "model.safetensors")))  # strict: the keys are DiT's
    src = dtviz.load(str(out))
    assert src.num_classes == 8 and src.info.can_sample
    assert sorted(os.listdir(out / "snapshots")) == ["step_000000.safetensors", "step_000006.safetensors"]
    # reproducible: the same seed gives the same weights
    out2 = tmp_path / "out2"
    argv2 = [a if a != str(out) else str(out2) for a in argv]
    argv2[argv2.index(str(tmp_path / "work"))] = str(tmp_path / "work2")
    assert main(argv2) == 0
    w1, w2 = load_file(str(out / "model.safetensors")), load_file(str(out2 / "model.safetensors"))
    assert all(torch.equal(w1[k], w2[k]) for k in w1)


def test_a_kept_state_between_evaluations_exports_and_its_curve_is_measured(tmp_path):
    """Train 5 of 8 steps (evaluated at 4), then export at step 5 (the kept state): it is evaluated first. The
    trial curve of the run folder equals the statistics recomputed here in float64 from each snapshot's c."""
    from scripts.train_builtin import main
    from scripts.trial_curve import main as curve_main

    work, out = tmp_path / "work", tmp_path / "out"
    common = ["--work", str(work), "--num-classes", "8", "--train-per-class", "8", "--heldout-per-class", "2",
              "--eval-every", "4", "--classifier-epochs", "1", "--batch-size", "16", "--sample-steps", "2",
              "--threads", "1", "--label-init-std", "0.02"]
    assert main(common + ["--out", str(out), "--steps", "8", "--max-steps", "5"]) == 0
    assert not (out / "config.json").exists()  # stopped at step 5 of 8
    assert main(common + ["--out", str(out), "--steps", "5"]) == 0
    history = json.load(open(out / "config.json"))["metrics"]["history"]
    assert [h["step"] for h in history] == [4, 5]
    trials = tmp_path / "trials.json"
    trials.write_text(json.dumps({"note": "n", "recipes": [{"name": "A", "recipe": "", "curve": []}]}))
    assert curve_main(["--work", str(work), "--name", "T", "--recipe", "tiny", "--trials", str(trials)]) == 0
    recipes = json.load(open(trials))["recipes"]
    assert [r["name"] for r in recipes] == ["A", "T"]
    rows = recipes[1]["curve"]
    assert [r["step"] for r in rows] == [0, 5] and rows[1]["class_accuracy"] == history[1]["class_accuracy"]
    for row in rows:
        src = dtviz.load(str(work / "snapshots" / f"step_{row['step']:06d}.safetensors"), family="sit")
        E = src.embeddings(t=src.t0).astype(np.float64)
        c_bar = np.abs(E.mean(0))
        U = E / np.linalg.norm(E, axis=1, keepdims=True)
        C = U @ U.T
        assert row["npr"] == pytest.approx(c_bar.sum() ** 2 / (c_bar ** 2).sum() / E.shape[1], abs=6e-5)
        assert row["cosine"] == pytest.approx(C[~np.eye(len(E), dtype=bool)].mean(), abs=6e-5)
        assert row["dims_at_least_1"] == int((c_bar >= 1).sum())
        c64 = E.astype(np.float64).mean(0)
        s64 = np.abs(c64 / (1 + np.exp(-c64)))
        assert row["npr_silu"] == pytest.approx(s64.sum() ** 2 / (s64 ** 2).sum() / E.shape[1], abs=6e-5)
        assert row["head_negative"] == int((c64[np.argsort(-np.abs(c64))[:8]] < 0).sum())
        assert_label_split(row, str(work / "snapshots" / f"step_{row['step']:06d}.safetensors"), src.t0)
    # the last kept state: class_read of state.pt's EMA weights, which equal the exported model's
    from dtviz.analysis.blocks import class_read

    state = recipes[1]["last_state"]
    expected = class_read(dtviz.load(str(out), device="cpu")).to_json()
    assert state["step"] == 5 and state["modulations"] == expected["modulations"]
    for key in ("head_share", "between_top_share", "rho_between_weight", "rho_magnitude_weight"):
        assert state[key] == pytest.approx(expected[key], abs=6e-5)
    # --last-state-only keeps the curve; a run folder without state.pt keeps the recorded last_state
    os.remove(work / "state.pt")
    assert curve_main(["--work", str(work), "--name", "T", "--trials", str(trials), "--last-state-only"]) == 0
    again = json.load(open(trials))["recipes"][1]
    assert again["curve"] == rows and again["last_state"] == state
    # run again with the same name: replaced in place, not added
    assert curve_main(["--work", str(work), "--name", "A", "--trials", str(trials)]) == 0
    assert [r["name"] for r in json.load(open(trials))["recipes"]] == ["A", "T"]


def assert_label_split(row: dict, snapshot: str, t0: float) -> None:
    """The curve's split of c at t0, re-computed in float64 from the snapshot's own tensors: the label rows (the
    table without its last, null row) and DiT's t_embedder MLP on its sinusoidal features."""
    from safetensors.numpy import load_file

    w = {k: v.astype(np.float64) for k, v in load_file(snapshot).items()}
    Y = w["y_embedder.embedding_table.weight"][:-1]
    half = w["t_embedder.mlp.0.weight"].shape[1] // 2

    def t_emb(t: np.ndarray) -> np.ndarray:
        args = np.outer(t, np.exp(-np.log(10000) * np.arange(half) / half))
        h = np.concatenate([np.cos(args), np.sin(args)], 1) @ w["t_embedder.mlp.0.weight"].T + w["t_embedder.mlp.0.bias"]
        return (h / (1 + np.exp(-h))) @ w["t_embedder.mlp.2.weight"].T + w["t_embedder.mlp.2.bias"]

    t_at_t0, t_bar = t_emb(np.array([t0]))[0], t_emb(np.linspace(0, 1, 64)).mean(0)
    y_bar = Y.mean(0)
    assert row["y_shared_sq"] == pytest.approx(y_bar @ y_bar, abs=6e-5)  # the curve keeps 4 decimals
    assert row["y_own_sq"] == pytest.approx(np.mean([(y - y_bar) @ (y - y_bar) for y in Y]), abs=6e-5)  # the curve keeps 4 decimals
    assert row["t_sq"] == pytest.approx(t_at_t0 @ t_at_t0, abs=6e-5)
    assert row["cos_y_t_mean"] == pytest.approx(y_bar @ t_bar / np.linalg.norm(y_bar) / np.linalg.norm(t_bar), abs=6e-5)


def test_learning_rate_schedule_known_answers():
    from dtviz.builtin.train import TrainConfig, learning_rate

    constant = TrainConfig(lr=1e-3, warmup=200, steps=4000)
    assert learning_rate(constant, 0) == pytest.approx(1e-3 / 200) and learning_rate(constant, 3999) == 1e-3
    decay = TrainConfig(lr=1e-3, warmup=200, steps=4000, decay_from=3000)
    assert learning_rate(decay, 2999) == 1e-3 and learning_rate(decay, 3000) == 1e-3
    assert learning_rate(decay, 3500) == pytest.approx(0.5e-3) and learning_rate(decay, 4000) == 0.0


@pytest.mark.parametrize("key, decayed", [("t_weight_decay", lambda n: n.startswith("t_embedder.")),
                                          ("label_weight_decay", lambda n: n.startswith("y_embedder.")),
                                          ("adaln_weight_decay", lambda n: n.endswith("adaLN_modulation.1.weight"))],
                         ids=["t_embedder", "label table", "adaLN weights"])
def test_a_weight_decay_shrinks_only_what_it_names(key, decayed):
    """--t-weight-decay / --label-weight-decay / --adaln-weight-decay: with zero gradients, one AdamW step multiplies
    those weights by 1 - lr·wd and leaves every other parameter as it was (a known answer, through the optimiser the
    training builds; the adaLN case includes the final layer's modulation and none of the biases)."""
    from dtviz.builtin.train import TrainConfig, param_groups

    cfg = TrainConfig(num_classes=4, hidden_size=32, depth=2, num_heads=2, **{key: 0.5})
    torch.manual_seed(0)
    model = DiT(cfg.dit_config())
    model.initialize_weights(label_std=0.02)
    with torch.no_grad():  # DiT zero-initialises adaLN; give every parameter a value a decay can shrink
        for p in model.parameters():
            p.add_(0.1)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.AdamW(param_groups(model, cfg), lr=0.1, weight_decay=0.0)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    shrunk = [name for name in before if decayed(name)]
    assert len(shrunk) == (3 if key == "adaln_weight_decay" else 1 if key == "label_weight_decay" else 4)
    for name, p in model.named_parameters():
        factor = 1 - 0.1 * 0.5 if decayed(name) else 1.0
        torch.testing.assert_close(p.detach(), before[name] * factor, msg=name)
    assert len(param_groups(model, TrainConfig())) == 1  # DiT's recipe: one group, the order earlier runs resume from


def test_a_negative_training_setting_is_one_sentence_before_any_work(capsys):
    """scripts/train_builtin.py --embedder-adam-eps -1: argparse's one-line error (exit 2), not AdamW's traceback after
    the data and classifier are built."""
    from scripts.train_builtin import parse

    with pytest.raises(SystemExit) as e:
        parse(["--embedder-adam-eps", "-1"])
    assert e.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(
        "error: --embedder-adam-eps expects a number ≥ 0; got -1.")


def test_embedder_adam_eps_makes_the_embedders_steps_gradient_sized():
    """--embedder-adam-eps ε: Adam's first step (bias-corrected m̂ = g, v̂ = g²) moves an embedder parameter by
    lr·mult·g / (|g| + ε), a step that grows with the gradient, while every other parameter moves by lr·sign(g) as
    under DiT's ε (a known answer, through the optimiser the training builds)."""
    from dtviz.builtin.train import TrainConfig, param_groups

    eps, lr, mult = 1e-3, 0.1, 3.0
    cfg = TrainConfig(num_classes=4, hidden_size=32, depth=1, num_heads=2, embedder_adam_eps=eps, embedder_lr_mult=mult)
    torch.manual_seed(0)
    model = DiT(cfg.dit_config())
    model.initialize_weights(label_std=0.02)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    grads = {n: torch.randn_like(p) * 1e-3 for n, p in model.named_parameters()}  # |g| of the order of ε
    groups = param_groups(model, cfg)
    for g in groups:
        g["lr"] = lr * g.pop("lr_mult")
    opt = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.99), weight_decay=0.0)
    for n, p in model.named_parameters():
        p.grad = grads[n].clone()
    opt.step()
    embedders = [n for n in before if n.startswith(("t_embedder.", "y_embedder."))]
    assert len(embedders) == 5  # label table; t_embedder's two Linears
    for n, p in model.named_parameters():
        g = grads[n].double()
        step = lr * mult * g / (g.abs() + eps) if n in embedders else lr * g / (g.abs() + 1e-8)
        torch.testing.assert_close(p.detach().double(), before[n].double() - step, rtol=1e-5, atol=1e-7, msg=n)
    assert sum(len(g["params"]) for g in groups) == len(before)
    # with --adaln-weight-decay too (recipe W): every parameter once, the decay on the adaLN weights alone
    both = param_groups(model, dataclasses.replace(cfg, adaln_weight_decay=0.5))
    assert sorted(id(p) for g in both for p in g["params"]) == sorted(id(p) for p in model.parameters())
    decayed = {id(p) for g in both if g.get("weight_decay") for p in g["params"]}
    assert decayed == {id(p) for n, p in model.named_parameters() if n.endswith("adaLN_modulation.1.weight")}
    assert {id(p) for g in both if g.get("eps") == eps for p in g["params"]} == {
        id(p) for n, p in model.named_parameters() if n in embedders}


def test_t_mean_penalty_is_the_mean_square_of_t_emb_averaged_over_t_and_reaches_only_t_emb():
    """--t-mean-penalty: mean_i(m_i²) with m the mean of t_emb over 64 evenly spaced t in [0, 1] (a float64
    re-computation from the MLP's weights), and its gradient lands on t_embedder alone."""
    import numpy as np

    from dtviz.builtin.train import TrainConfig, t_mean_penalty_loss
    from dtviz.models.dit import timestep_features

    cfg = TrainConfig(num_classes=4, hidden_size=32, depth=1, num_heads=2, t_mean_penalty=1.0)
    torch.manual_seed(0)
    model = DiT(cfg.dit_config())
    model.initialize_weights(label_std=0.02)
    for p in model.t_embedder.parameters():  # DiT's init leaves the output layer's bias at 0: give it a value
        torch.nn.init.normal_(p, std=0.3)
    w = {n: p.detach().double().numpy() for n, p in model.t_embedder.mlp.named_parameters()}
    feats = timestep_features(torch.linspace(0, 1, 64), model.t_embedder.frequency_embedding_size).double().numpy()
    h = feats @ w["0.weight"].T + w["0.bias"]
    h = h / (1 + np.exp(-h))  # SiLU
    m = (h @ w["2.weight"].T + w["2.bias"]).mean(0)
    penalty = t_mean_penalty_loss(model)
    assert penalty.item() == pytest.approx(float((m ** 2).mean()), rel=1e-5)
    penalty.backward()
    for name, p in model.named_parameters():
        touched = p.grad is not None and bool(p.grad.abs().sum() > 0)
        assert touched == name.startswith("t_embedder."), name


@pytest.mark.parametrize("name", ["builtin", "builtin-v2", "builtin-wide"])
def test_each_card_s_training_command_asks_for_that_model_s_own_settings(name):
    """The "Regenerate" command a card prints, parsed by scripts/train_builtin.py, gives back every number of the
    training settings in that model's config.json (a setting the command left out would train another model)."""
    import json
    import shlex

    from dtviz.builtin.card import train_command
    from dtviz.sources.builtins import builtin_dir
    from scripts.train_builtin import parse

    with open(os.path.join(builtin_dir(name), "config.json")) as fh:
        config = json.load(fh)
    with open(os.path.join(builtin_dir(name), "card.json")) as fh:
        card = json.load(fh)
    argv = shlex.split(train_command(config["training"], card))[2:]
    args, cfg = parse(argv)
    for key, value in config["training"].items():
        if isinstance(value, (int, float)) and hasattr(cfg, key):
            assert getattr(cfg, key) == value, key
    sampler = card["sampler"]
    assert args.ship_sampler in (None, f"{sampler['name']}:{sampler['steps']}")


def test_what_stands_in_the_way_is_read_off_the_recipes_snapshots():
    """The card's "What stands in the way" names the best snapshot for each of the two goals, and whether any met
    both (known answers on a made-up trials.json); snapshots without the label part's cosine are left out."""
    from dtviz.builtin.card import obstacle_lines

    snap = lambda step, cos_y, npr: {"step": step, "cosine": 0.9, "cosine_y": cos_y, "npr": npr,  # noqa: E731
                                     "cosine_min_t": 0.8}
    trials = {"recipes": [
        {"name": "P: sparse", "curve": [snap(0, 0.0, 0.6), snap(100, 0.01, 0.09), snap(200, 0.02, 0.08)]},
        {"name": "Q: aligned", "curve": [snap(100, 0.6, 0.7), snap(200, 0.55, 0.4), {"step": 300, "cosine": 1.0, "npr": 0.01}]},
    ], "obstacle": "Reading."}
    text = "\n".join(obstacle_lines(trials))
    assert "Over the 5 snapshots" in text
    assert "the highest cosine of y is 0.020 (recipe P, step 200)" in text
    assert "the lowest nPR(c̄) is 40.0 % (recipe Q, step 200; y+t cosine 0.900, lowest cosine over t 0.800)" in text
    assert "none met both" in text and text.rstrip().endswith("Reading.")
    trials["recipes"][0]["curve"].append(snap(300, 0.7, 0.05))
    assert "- 1 met both" in "\n".join(obstacle_lines(trials))
    assert "of SiLU(c̄)" not in text  # no snapshot measured it
    trials["recipes"][0]["curve"][1]["npr_silu"] = 0.175
    trials["recipes"][1]["curve"][1]["npr_silu"] = 0.4
    assert ("- of SiLU(c̄), what adaLN reads, the lowest nPR is 17.5 % (recipe P, step 100; nPR(c̄) 9.0 % there); 0 of "
            "the 2 snapshots that measured it reach 10 %.") in "\n".join(obstacle_lines(trials))
    assert "Where c's size sits" not in text  # no snapshot measured it
    claims = [{"id": "alignment_y", "verdict": "does not hold", "evidence": {
        "t_bias": "t_embedder.mlp.2.bias", "split": {"shift_norm": 1.2479, "t_norm": 6.0455, "target": 0.5}}},
        {"id": "alignment_yt", "verdict": "holds"}, {"id": "head_is_class", "verdict": "does not hold"},
        {"id": "variance_head", "verdict": "partly"}]
    text = "\n".join(obstacle_lines(trials, {"claims": claims, "head_modulation": {
        "k": 8, "head": 0.1141, "random": 0.0425, "random_draws": 2, "modulations": 3}}))
    assert ("moving a vector of length 1.25 from t_embedder.mlp.2.bias into every label row (‖t(t0)‖ = 6.05) would "
            "give a cosine of y of 0.5 with every c and every sample as they are") in text
    assert "short of the paper's claims: head_is_class (does not hold), variance_head (partly)." in text
    assert ("removing the 8 head dims changes the modulation by 11.4 % of its size, 8 random dims (the scorecard's 2 "
            "draws) by 4.2 % (mean over the 3 adaLN modulations") in text


def test_the_card_shows_where_c_s_size_sits_at_each_recipe_s_last_snapshot_that_measured_it():
    from dtviz.builtin.card import size_split_lines

    snap = lambda step, split: {"step": step, "npr": 0.25, **split}  # noqa: E731
    split = lambda shared, own, t, along: {"y_shared_sq": shared, "y_own_sq": own, "t_sq": t,  # noqa: E731
                                           "cos_y_t_mean": along}
    trials = {"recipes": [
        {"name": "P: one", "curve": [snap(0, split(0.0, 0.0, 1.0, None)),
                                     snap(500, {**split(0.5, 1.5, 2.0, 0.72), "npr_silu": 0.3125, "head_negative": 6}),
                                     snap(600, {})]},
        {"name": "Q: none", "curve": [snap(0, {})]},
        {"name": "R: zero", "curve": [snap(0, split(0.0, 0.0, 1.25, None))]},
    ]}
    lines = size_split_lines(trials)
    assert lines[-2:] == ["| P | 500 | 0.5000 | 1.5000 | 0.250 | 2.0000 | +0.720 | 25.0 % | 31.2 % | 6 |",
                          "| R | 0 | 0.0000 | 0.0000 | – | 1.2500 | – | 25.0 % | – | – |"]
    assert size_split_lines({"recipes": trials["recipes"][1:2]}) == []


def test_a_card_states_each_training_setting_outside_dit_s_recipe():
    """departure_lines: nothing for DiT's own recipe; the penalty with its λ and the grid the code uses, and the
    weight decay, each in a line of its own."""
    from dtviz.builtin.card import departure_lines
    from dtviz.builtin.train import T_GRID

    assert departure_lines({"t_mean_penalty": 0.0, "t_weight_decay": 0.0, "label_weight_decay": 0.0,
                            "adaln_weight_decay": 0.0}) == [] == departure_lines({})
    assert departure_lines({"label_weight_decay": 0.5}) == [
        "- **Not in DiT's recipe:** AdamW weight decay 0.5 on the label table alone (`--label-weight-decay`)."]
    assert departure_lines({"adaln_weight_decay": 1.0}) == [
        "- **Not in DiT's recipe:** AdamW weight decay 1 on the weights of the adaLN modulations alone, the Linears that "
        "read SiLU(c) (`--adaln-weight-decay`)."]
    assert departure_lines({"embedder_adam_eps": 3e-4}) == [
        "- **Not in DiT's recipe:** Adam's ε is 0.0003 on both embedders (DiT's: 1e-8), so their steps grow with their "
        "gradients, as SGD's do (`--embedder-adam-eps`)."]
    lines = departure_lines({"t_mean_penalty": 10.0, "t_weight_decay": 3.0})
    assert len(lines) == 2
    assert f"averaged over {len(T_GRID)} t in [0, 1] and λ = 10," in lines[0] and "weight decay 3 on t_embedder" in lines[1]
    assert "steps only" not in lines[0]
    assert departure_lines({"embedder_lr_mult": 0.1, "label_lr_mult": 10.0}) == [
        "- **Not in DiT's recipe:** the learning rate of t_embedder is 0.1× and that of the label table 1× the rest's "
        "(`--embedder-lr-mult 0.1` `--label-lr-mult 10`)."]
    assert "embedder is 5× and that of the label table 5× the rest's (`--embedder-lr-mult 5`)." in departure_lines(
        {"embedder_lr_mult": 5.0, "label_lr_mult": 1.0})[0]
    limited = departure_lines({"t_mean_penalty": 10.0, "t_mean_penalty_steps": 500})[0]
    assert "λ = 10, added to the flow-matching loss" in limited
    assert "for the first 500 steps only (`--t-mean-penalty-steps`), DiT's loss alone after them. The label" in limited


def test_the_t_mean_penalty_stops_at_its_step_and_costs_nothing_without_its_weight():
    from dtviz.builtin.train import TrainConfig, t_mean_penalty_applies

    always = TrainConfig(t_mean_penalty=10.0)
    assert [t_mean_penalty_applies(always, s) for s in (0, 499, 500, 10**6)] == [True] * 4
    first = TrainConfig(t_mean_penalty=10.0, t_mean_penalty_steps=500)
    assert [t_mean_penalty_applies(first, s) for s in (0, 499, 500, 501)] == [True, True, False, False]
    assert not any(t_mean_penalty_applies(TrainConfig(t_mean_penalty_steps=500), s) for s in (0, 499))


@pytest.mark.parametrize("name", ["builtin", "builtin-v2", "builtin-wide"])
def test_each_card_states_its_label_init_as_trained(name):
    from dtviz.sources.builtins import BUILTINS

    folder = BUILTINS[name].path
    std = json.load(open(os.path.join(folder, "config.json")))["training"]["label_init_std"]
    text = open(os.path.join(folder, "README.md"), encoding="utf-8").read()
    assert ("label table initialised at zero" if std == 0 else f"label table initialised at std {std:g},") in text


def test_where_adaln_reads_the_class_is_worded_as_its_numbers_fall():
    """class_read_lines (claims.class_read_sentence): the closing reading follows both comparisons (shares and ρ), and
    says so when they disagree."""
    from dtviz.builtin.card import class_read_lines

    base = {"k": 20, "d": 512, "modulations": 3, "uniform_share": 20 / 512, "read_top_share": 0.3}
    weights = class_read_lines({"class_read": {**base, "head_share": 0.067, "between_top_share": 0.255,
                                               "rho_between_weight": 0.81, "rho_magnitude_weight": 0.63}})[1]
    assert "put 6.7 % there" in weights and "varies most in c 25.5 % (uniform 3.9 %)" in weights
    assert "ρ = 0.81" in weights and "through larger weights on dims where c̄ is small" in weights
    head = class_read_lines({"class_read": {**base, "head_share": 0.3, "between_top_share": 0.2,
                                            "rho_between_weight": 0.1, "rho_magnitude_weight": 0.6}})[1]
    assert "through the dims where c̄ is large at least as much" in head
    mixed = class_read_lines({"class_read": {**base, "head_share": 0.3, "between_top_share": 0.2,
                                             "rho_between_weight": 0.8, "rho_magnitude_weight": 0.6}})[1]
    assert "point different ways" in mixed
    assert class_read_lines({}) == []


def test_the_card_tabulates_where_adaln_reads_the_class_in_each_recipe_s_last_state():
    """last_state_lines: one row per recipe that kept a state, shares in % and ρ signed, in trials.json's order."""
    from dtviz.builtin.card import last_state_lines

    state = {"step": 3500, "k": 20, "d": 512, "modulations": 3, "head_share": 0.0667, "between_top_share": 0.2553,
             "uniform_share": 0.0391, "rho_between_weight": 0.8148, "rho_magnitude_weight": -0.0047}
    trials = {"recipes": [{"name": "A: none", "curve": []}, {"name": "I: shipped", "curve": [], "last_state": state}]}
    lines = last_state_lines(trials)
    assert lines[-1] == "| I | 3500 | 6.7 % | 25.5 % | 3.9 % | +0.81 | -0.00 |"
    assert "top-20" in lines[3] and len(lines) == 6
    assert last_state_lines({"recipes": [{"name": "A: none", "curve": []}]}) == []
