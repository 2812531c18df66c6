"""dtviz.analysis.blocks (per-block modulation) against direct float64 computations with each model's own modules:
m(c) = adaLN(c) chunked as the block chunks it, P(c) = c·keep; the CLI's JSON keys and DiT's chunk order."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import dtviz
from dtviz.analysis.blocks import contributions, modulation_change
from dtviz.cli.main import main
from dtviz.models.dit import timestep_features
from dtviz.pruning.spec import PruneSpec, keep_mask
from tests.factories import family_state, save_checkpoint, tiny_lightningdit_config, randomized_lightningdit

NUM_CLASSES = 10
# DiT models.py DiTBlock.forward: `shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = ….chunk(6, dim=1)`
DIT_CHUNKS = ("shift_msa", "scale_msa", "gate_msa", "shift_mlp", "scale_mlp", "gate_mlp")
SPECS = [PruneSpec(mode="tail", tau=0.15), PruneSpec(mode="head", k=3, mask="per-sample"),
         PruneSpec(mode="tail", k=7, mask="per-sample")]


def native_source(tmp_path, family: str, **options):
    if family == "lightningdit-wo-shift":
        state = randomized_lightningdit(tiny_lightningdit_config(NUM_CLASSES, wo_shift=True, **options)).state_dict()
        family = "lightningdit"
    else:
        state = family_state(family, NUM_CLASSES)
    path = save_checkpoint({k: v.clone() for k, v in state.items()}, str(tmp_path / f"{family}.pt"))
    return dtviz.load(path, family=family, device="cpu")


def oracle(model, t: float, spec: PruneSpec, blocks, chunk_names, final_chunks=("shift", "scale")):
    """{block: {chunk: mean rel. change}} by the model's own adaLN modules in float64."""
    model = model.double()
    ids = torch.arange(NUM_CLASSES)
    c = model.t_embedder.mlp(timestep_features(torch.full((NUM_CLASSES,), t)).double()) + \
        model.y_embedder.embedding_table.weight[ids]  # (N, d) float64
    c_np = c.detach().numpy()
    keep = keep_mask(c_np.mean(0), spec)[None] if spec.mask == "global" else keep_mask(c_np, spec)
    pc = c * torch.as_tensor(np.broadcast_to(keep, c.shape).copy())
    out = {}
    for i, (block, names) in enumerate([(b, chunk_names) for b in blocks] + [(model.final_layer, final_chunks)]):
        m, mp = block.adaLN_modulation(c), block.adaLN_modulation(pc)
        rel = {n: ((a - b).norm(dim=1) / a.norm(dim=1)).mean().item()
               for n, a, b in zip(names, m.chunk(len(names), 1), mp.chunk(len(names), 1))}
        rel["all"] = ((m - mp).norm(dim=1) / m.norm(dim=1)).mean().item()
        out["final" if block is model.final_layer else i] = rel
    return out


def check(result, expected):
    assert [b["block"] for b in result.blocks] == list(range(len(result.blocks)))
    for b in result.blocks:
        assert list(b["relative_change"]) == list(expected[b["block"]])
        np.testing.assert_allclose(list(b["relative_change"].values()), list(expected[b["block"]].values()), rtol=1e-5)
    assert list(result.final) == list(expected["final"])
    np.testing.assert_allclose(list(result.final.values()), list(expected["final"].values()), rtol=1e-5)


@pytest.mark.parametrize("family", ["dit", "mdt", "lightningdit-wo-shift"])
def test_relative_change_matches_float64_oracle(tmp_path, family):
    source = native_source(tmp_path, family)
    model = source.build_model()
    if family == "mdt":
        blocks, names = [*model.en_inblocks, *model.en_outblocks, *model.de_blocks], DIT_CHUNKS
    elif family == "dit":
        blocks, names = list(model.blocks), DIT_CHUNKS
    else:
        blocks, names = list(model.blocks), ("scale_msa", "gate_msa", "scale_mlp", "gate_mlp")
    results = modulation_change(source, SPECS)
    for spec, result in zip(SPECS, results):
        check(result, oracle(model, source.t0, spec, blocks, names))
    assert results[0].blocks[0]["relative_change"]["all"] > 0  # the spec removes something


def test_nothing_pruned_is_zero_and_everything_is_one(tmp_path):
    source = native_source(tmp_path, "dit")
    none, every = modulation_change(source, [PruneSpec(mode="tail", tau=0.0), PruneSpec(mode="head", tau=0.0)])
    assert all(v == 0 for b in none.blocks for v in b["relative_change"].values())
    # P(c) = 0: m(P(c)) = b, so ‖Δm‖/‖m‖ = ‖W·SiLU(c)‖/‖W·SiLU(c) + b‖, not 1 — check one block by hand
    w = source.build_model().blocks[0].adaLN_modulation[1]
    s = torch.nn.functional.silu(torch.as_tensor(source.embeddings(), dtype=torch.float64))
    lin = s @ w.weight.double().T
    expected = (lin.norm(dim=1) / (lin + w.bias.double()).norm(dim=1)).mean().item()
    assert every.blocks[0]["relative_change"]["all"] == pytest.approx(expected, rel=1e-5)


def test_contributions_known_answer(tmp_path):
    source = native_source(tmp_path, "dit")
    model = source.build_model()
    result = contributions(source, tau=0.2)
    c = source.embeddings().astype(np.float64)
    order = np.argsort(-np.abs(c.mean(0)), kind="stable")
    act = np.abs(c / (1 + np.exp(-c))).mean(0)
    w = model.blocks[1].adaLN_modulation[1].weight.detach().double().numpy()
    gate_mlp = np.linalg.norm(w[5 * 32:6 * 32], axis=0) * act
    np.testing.assert_allclose(result.chunks["gate_mlp"][1], gate_mlp[order], rtol=1e-10)
    assert np.isnan(result.chunks["gate_mlp"][-1]).all()  # the final layer has no gate
    assert result.row_labels[-1] == "final" and result.head.sum() == (np.abs(c.mean(0)) >= 0.2).sum()
    # averaged over a few rows: the activations are theirs, the order and the head are c̄'s over all rows
    few = contributions(source, tau=0.2, classes=[0, 3])
    act_few = np.abs(c[[0, 3]] / (1 + np.exp(-c[[0, 3]]))).mean(0)
    np.testing.assert_array_equal(few.order, order)
    assert few.head.sum() == result.head.sum()
    np.testing.assert_allclose(few.chunks["gate_mlp"][1], (np.linalg.norm(w[5 * 32:6 * 32], axis=0) * act_few)[order],
                               rtol=1e-10)


def test_the_final_layers_change_is_in_the_legend_not_on_the_bars(tmp_path):
    from dtviz import plots

    source = native_source(tmp_path, "dit")
    change = modulation_change(source, PruneSpec(tau=0.2))[0]
    fig = plots.modulation_change_bars(change, {"model": "m"}, "tail τ = 0.2")
    line = next(t for t in fig.data if t.name.startswith("final layer (all):"))
    assert line.name == f"final layer (all): {change.final['all']:.3g}"
    assert not [a for a in fig.layout.annotations if "final layer" in (a.text or "")]


def test_diffusers_dit_matches_its_own_modules(tmp_path):
    pytest.importorskip("diffusers")
    from tests.test_diffusers_source import tiny_transformer, write_pipeline

    model = tiny_transformer()
    folder = write_pipeline(tmp_path / "pipe", model)
    source = dtviz.load(folder, device="cpu")
    spec = PruneSpec(mode="head", k=4, mask="per-sample")
    result = modulation_change(source, spec)[0]
    tr = model.double().eval()  # the weights the pipeline folder holds
    ids, t = torch.arange(NUM_CLASSES), torch.full((NUM_CLASSES,), source.t0)
    with torch.no_grad():
        c0 = tr.transformer_blocks[0].norm1.emb(t, ids, hidden_dtype=torch.float64)
        keep = torch.as_tensor(keep_mask(c0.numpy(), spec))  # the pruner's mask: block 0's c, row by row
        for i, block in enumerate(tr.transformer_blocks):
            c = block.norm1.emb(t, ids, hidden_dtype=torch.float64)
            m = block.norm1.linear(torch.nn.functional.silu(c))
            mp = block.norm1.linear(torch.nn.functional.silu(c * keep))
            got = result.blocks[i]["relative_change"]
            for n, a, b in zip(DIT_CHUNKS, m.chunk(6, 1), mp.chunk(6, 1)):
                assert got[n] == pytest.approx(((a - b).norm(dim=1) / a.norm(dim=1)).mean().item(), rel=1e-5)
        m = tr.proj_out_1(torch.nn.functional.silu(c0))
        mp = tr.proj_out_1(torch.nn.functional.silu(c0 * keep))
        shift = m.chunk(2, 1)[0], mp.chunk(2, 1)[0]
    assert list(result.final) == ["shift", "scale", "all"]
    assert result.final["shift"] == pytest.approx(((shift[0] - shift[1]).norm(dim=1) / shift[0].norm(dim=1)).mean().item(), rel=1e-5)


def test_cli_json_keys_and_chunk_order(tmp_path, capsys):
    path = save_checkpoint(family_state("dit", NUM_CLASSES), str(tmp_path / "dit.pt"))
    assert main(["blocks", path, "--family", "dit", "--mode", "head", "--k", "2", "--mask", "per-sample", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out) == ["blocks", "final", "final_vs_spread", "tau", "over_t", "class_read"]
    assert [b["block"] for b in out["blocks"]] == [0, 1]
    assert list(out["blocks"][0]) == ["block", "relative_change", "change_vs_spread"]
    assert list(out["blocks"][0]["relative_change"]) == [*DIT_CHUNKS, "all"]
    assert list(out["final"]) == ["shift", "scale", "all"]
    source = dtviz.load(path, family="dit", device="cpu")
    expected = modulation_change(source, PruneSpec(mode="head", k=2, mask="per-sample"))[0].to_json()
    assert {k: out[k] for k in expected} == expected
    # over t: the mean and max over the sampler's t of the per-t values, block by block
    from dtviz.analysis.blocks import change_over_t

    over = change_over_t(source, PruneSpec(mode="head", k=2, mask="per-sample"), out["over_t"]["t"])
    assert out["over_t"]["max"]["change_vs_spread"] == pytest.approx(over["change_vs_spread"].max(0).tolist())
    assert len(out["over_t"]["t"]) == 16 and out["over_t"]["t"][0] == source.t0
    from dtviz.analysis.blocks import class_read

    assert out["class_read"] == json.loads(json.dumps(class_read(source).to_json()))


def test_change_against_the_between_row_spread_matches_float64(tmp_path):
    """‖Δm‖ / sqrt(mean ‖m − m̄‖²), from the model's own adaLN modules in float64."""
    source = native_source(tmp_path, "dit")
    model = source.build_model().double()
    spec = PruneSpec(mode="head", k=3)
    ids = torch.arange(NUM_CLASSES)
    t = source.t0
    c = model.t_embedder.mlp(timestep_features(torch.full((NUM_CLASSES,), t)).double()) + \
        model.y_embedder.embedding_table.weight[ids]
    keep = torch.as_tensor(keep_mask(c.detach().numpy().mean(0), spec))
    result = modulation_change(source, spec)[0]
    for i, block in enumerate(list(model.blocks) + [model.final_layer]):
        m, mp = block.adaLN_modulation(c), block.adaLN_modulation(c * keep)
        spread = ((m - m.mean(0)) ** 2).sum(1).mean().sqrt()
        expected = ((m - mp).norm(dim=1).mean() / spread).item()
        got = result.final_vs_spread if i == len(model.blocks) else result.blocks[i]["change_vs_spread"]
        assert got == pytest.approx(expected, rel=1e-5)


def test_cli_refuses_a_matrix_in_one_sentence(tmp_path, capsys):
    path = tmp_path / "c.npy"
    np.save(path, np.random.default_rng(0).normal(size=(5, 8)).astype(np.float32))
    assert main(["blocks", str(path), "--json"]) == 2
    err = capsys.readouterr().err
    assert "adaLN weights" in err and "Traceback" not in err


# ------------------------------------------------------------------------------------- SD3 / Flux

def named_chunks(norm, c: torch.Tensor) -> dict:
    """Chunks named by the diffusers module's own forward on a zero hidden state (LayerNorm(0) = 0, so the
    modulated output is the shift): AdaLayerNormZero, AdaLayerNormZeroSingle, AdaLayerNormContinuous."""
    zero = torch.zeros(c.shape[0], 1, norm.linear.in_features, dtype=c.dtype)
    kind = type(norm).__name__
    if kind == "AdaLayerNormZero":
        x, gate_msa, shift_mlp, scale_mlp, gate_mlp = norm(zero, emb=c)
        return dict(shift_msa=x[:, 0], gate_msa=gate_msa, shift_mlp=shift_mlp, scale_mlp=scale_mlp, gate_mlp=gate_mlp)
    if kind == "AdaLayerNormZeroSingle":
        x, gate_msa = norm(zero, emb=c)
        return dict(shift_msa=x[:, 0], gate_msa=gate_msa)
    if kind == "AdaLayerNormContinuous":
        return dict(shift=norm(zero, c)[:, 0])
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["sd3", "flux"])
def test_t2i_chunks_named_by_diffusers_forward(tmp_path, kind):
    pytest.importorskip("diffusers")
    from tests.t2i_factories import build_flux, build_sd3, save_pipeline

    pipe = build_sd3(with_t5=False) if kind == "sd3" else build_flux()
    source = dtviz.load(save_pipeline(pipe, str(tmp_path / kind)), prompts=["a red cube", "a cat", "two dogs", "sky"])
    spec = PruneSpec(mode="head", k=5, mask="per-sample")
    result = modulation_change(source, spec)[0]
    tr = pipe.transformer.double().eval()
    c = torch.as_tensor(source.embeddings(), dtype=torch.float64)
    pc = c * torch.as_tensor(keep_mask(c.numpy(), spec))
    norms = [(i, "", b.norm1) for i, b in enumerate(tr.transformer_blocks)]
    norms += [(i, "context.", b.norm1_context) for i, b in enumerate(tr.transformer_blocks)]
    norms += [(len(tr.transformer_blocks) + i, "", b.norm) for i, b in enumerate(getattr(tr, "single_transformer_blocks", []))]
    norms += [("final", "", tr.norm_out)]
    checked = 0
    with torch.no_grad():
        for block, prefix, norm in norms:
            got = result.final if block == "final" else result.blocks[block]["relative_change"]
            full, pruned = named_chunks(norm, c), named_chunks(norm, pc)
            for name in full:
                want = ((full[name] - pruned[name]).norm(dim=1) / full[name].norm(dim=1)).mean().item()
                assert got[prefix + name] == pytest.approx(want, rel=1e-5), (block, prefix + name)
                checked += 1
    assert checked >= 10
    assert [b["block"] for b in result.blocks] == list(range(len(result.blocks)))


def test_class_read_is_what_one_dim_alone_puts_into_the_modulations(tmp_path):
    """ClassRead.read_[j]: feed each adaLN module c̄ with only dim j taken from each row, so only SiLU(c)_j varies
    between rows; the between-row variance of its outputs, summed over the blocks and the final layer, is read_[j]
    (float64 through the model's own modules). weight_ is the column norm, the ρ Pearson's correlation of the ranks."""

    def spearmanr(x, y):  # no ties in these float columns: ranks by a double argsort
        rx, ry = np.argsort(np.argsort(x)).astype(float), np.argsort(np.argsort(y)).astype(float)
        return (np.corrcoef(rx, ry)[0, 1],)

    from dtviz.analysis.blocks import class_read

    source = native_source(tmp_path, "dit")
    model = source.build_model().double()
    result = class_read(source, k=5)
    c = torch.as_tensor(source.embeddings().astype(np.float64))  # (N, d)
    modules = [b.adaLN_modulation for b in model.blocks] + [model.final_layer.adaLN_modulation]
    d = c.shape[1]
    expected = np.zeros(d)
    with torch.no_grad():
        for j in range(d):
            alone = c.mean(0).repeat(len(c), 1)
            alone[:, j] = c[:, j]
            expected[j] = sum(m(alone).var(0, unbiased=False).sum().item() for m in modules)
    assert expected.min() > 0
    np.testing.assert_allclose(result.read_, expected, rtol=1e-9, atol=1e-14)
    weight = np.sqrt(sum((m[1].weight.detach().numpy() ** 2).sum(0) for m in modules))
    np.testing.assert_allclose(result.weight_, weight, rtol=1e-12)
    np.testing.assert_allclose(result.between_, c.numpy().var(0), rtol=1e-12)
    magnitude = np.abs(c.numpy().mean(0))
    assert result.rho_between_weight == pytest.approx(spearmanr(c.numpy().var(0), weight)[0], abs=1e-12)
    assert result.rho_magnitude_weight == pytest.approx(spearmanr(magnitude, weight)[0], abs=1e-12)
    head = np.argsort(-magnitude)[:5]
    assert set(result.head.tolist()) == set(head.tolist())
    assert result.head_share == pytest.approx(expected[head].sum() / expected.sum(), rel=1e-9)
    assert result.read_top_share == pytest.approx(np.sort(expected)[::-1][:5].sum() / expected.sum(), rel=1e-9)
    assert result.to_json()["uniform_share"] == 5 / d
