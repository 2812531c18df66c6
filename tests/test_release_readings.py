"""Native checkpoints read as their releases build them (issue 10, items 6-9): label tables without a null row,
REPA --qk-norm and --legacy, LightningDiT without RoPE/SwiGLU, head counts from the wrapper or stated.

The backbones are checked against an independent float64 re-implementation of the DiT forward written here
(adaLN-Zero blocks, optional timm qk-norm, optional wo_shift), not against dtviz's own modules."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import dtviz
from dtviz.cli.main import build_parser, main
from dtviz.errors import DtvizInputError
from dtviz.sampling.generate import Generator, SampleSettings
from dtviz.models.dit import DiT, DiTConfig
from tests.factories import (randomized_lightningdit, repa_legacy_state, save_checkpoint, save_lightning_wrapper,
                             save_train_wrapper, tiny_lightningdit_config)
from tests.test_native_loader import reference_c


# ------------------------------------------------------------------------------ independent reference

def reference_forward(state: dict, x, t, y, heads: int) -> torch.Tensor:
    """DiT's forward in float64 from the state dict alone: patchify + pos_embed, c = MLP(sinusoid(t)) + table[y],
    blocks x += g·attn(LN(x)(1+s)+b), x += g·mlp(...); q/k LayerNorm (eps 1e-5) when the keys have it; a (4D, D)
    adaLN has no shifts; final layer and unpatchify. Returns (N, out_channels, H, W)."""
    sd = {k: v.double() for k, v in state.items()}
    W = sd["x_embedder.proj.weight"]
    D, p = W.shape[0], W.shape[2]
    h = F.conv2d(x.double(), W, sd["x_embedder.proj.bias"], stride=p).flatten(2).transpose(1, 2) + sd["pos_embed"]
    half = 128
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float64) / half)
    args = t.double()[:, None] * freqs[None]
    feats = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    temb = F.linear(F.silu(F.linear(feats, sd["t_embedder.mlp.0.weight"], sd["t_embedder.mlp.0.bias"])),
                    sd["t_embedder.mlp.2.weight"], sd["t_embedder.mlp.2.bias"])
    c = temb + sd["y_embedder.embedding_table.weight"][y]
    N, T, _ = h.shape
    hd = D // heads

    def ln(v, eps=1e-6):
        return (v - v.mean(-1, keepdim=True)) / torch.sqrt(v.var(-1, unbiased=False, keepdim=True) + eps)

    i = 0
    while f"blocks.{i}.attn.qkv.weight" in sd:
        b = f"blocks.{i}."
        mod = F.linear(F.silu(c), sd[b + "adaLN_modulation.1.weight"], sd[b + "adaLN_modulation.1.bias"])
        if mod.shape[1] == 6 * D:
            s1, sc1, g1, s2, sc2, g2 = mod.chunk(6, dim=1)
        else:
            sc1, g1, sc2, g2 = mod.chunk(4, dim=1)
            s1 = s2 = torch.zeros_like(sc1)
        a = ln(h) * (1 + sc1[:, None]) + s1[:, None]
        q, k, v = F.linear(a, sd[b + "attn.qkv.weight"], sd[b + "attn.qkv.bias"]).reshape(N, T, 3, heads, hd).permute(2, 0, 3, 1, 4)
        if b + "attn.q_norm.weight" in sd:
            q = ln(q, 1e-5) * sd[b + "attn.q_norm.weight"] + sd[b + "attn.q_norm.bias"]
            k = ln(k, 1e-5) * sd[b + "attn.k_norm.weight"] + sd[b + "attn.k_norm.bias"]
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd), dim=-1) @ v
        att = att.transpose(1, 2).reshape(N, T, D)
        h = h + g1[:, None] * F.linear(att, sd[b + "attn.proj.weight"], sd[b + "attn.proj.bias"])
        m = ln(h) * (1 + sc2[:, None]) + s2[:, None]
        m = F.linear(F.gelu(F.linear(m, sd[b + "mlp.fc1.weight"], sd[b + "mlp.fc1.bias"]), approximate="tanh"),
                     sd[b + "mlp.fc2.weight"], sd[b + "mlp.fc2.bias"])
        h = h + g2[:, None] * m
        i += 1
    shift, scale = F.linear(F.silu(c), sd["final_layer.adaLN_modulation.1.weight"], sd["final_layer.adaLN_modulation.1.bias"]).chunk(2, dim=1)
    out = F.linear(ln(h) * (1 + scale[:, None]) + shift[:, None], sd["final_layer.linear.weight"], sd["final_layer.linear.bias"])
    C, g = out.shape[-1] // (p * p), int(T ** 0.5)
    out = out.reshape(N, g, g, p, p, C)
    return torch.einsum("nhwpqc->nchpwq", out).reshape(N, C, g * p, g * p)


def random_dit_state(seed=0, hidden=128, heads=4, depth=2, num_classes=10, dropout=0.1, qk_norm=False) -> dict:
    torch.manual_seed(seed)
    model = DiT(DiTConfig(input_size=8, patch_size=2, in_channels=3, hidden_size=hidden, depth=depth, num_heads=heads,
                          num_classes=num_classes, class_dropout_prob=dropout, **({"qk_norm": True} if qk_norm else {})))
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.copy_(torch.randn_like(p) * 0.2)
    return {k: v.clone() for k, v in model.state_dict().items()}


def assert_forward_matches(model, state, heads, t_value, rows=(0, 5, 9)):
    torch.manual_seed(1)
    x, y = torch.randn(len(rows), state["x_embedder.proj.weight"].shape[1], 8, 8), torch.tensor(rows)
    t = torch.full((len(rows),), t_value)
    with torch.no_grad():
        got = model(x, t, y).double()
    ref = reference_forward(state, x, t, y, heads)
    ref = ref[:, :got.shape[1]]  # LightningDiT drops a learned sigma half
    # float32 against float64 through random 0.2-std weights: ~4e-4 of the largest output at t = 999 (the
    # release, too, forms t·f in float32); a wrong head count or a dropped shift moves it by ~10-50 %
    assert (got - ref).abs().max() <= 2e-3 * ref.abs().max(), (got - ref).abs().max()
    return (got - ref).abs().max() / ref.abs().max()


# ------------------------------------------------------------------------------ 6: null row

def test_label_table_without_null_row_keeps_every_class(tmp_path):
    state = random_dit_state(dropout=0.0)  # DiT(class_dropout_prob=0): 10 rows, no null row
    assert state["y_embedder.embedding_table.weight"].shape[0] == 10
    path = save_train_wrapper(state, str(tmp_path / "0000100.pt"), model="DiT-XL/2", image_size=64, num_classes=10)
    src = dtviz.load(path, device="cpu")
    assert src.num_classes == 10 and src.info.extra["null_row"] is False
    assert src.family.key == "dit" and not src.family_ambiguous  # the args name DiT's train.py: nothing to ask
    np.testing.assert_allclose(src.embeddings(), reference_c(state, range(10), 999.0), rtol=1e-4, atol=1e-4)
    # the same table with the null row (num_classes + 1 rows) is read with it
    with_null = random_dit_state(dropout=0.1)
    src = dtviz.load(save_train_wrapper(with_null, str(tmp_path / "n.pt"), model="DiT-XL/2", num_classes=10), device="cpu")
    assert src.num_classes == 10 and src.info.extra["null_row"] is True
    # a wrapper that contradicts the table is refused in one sentence
    with pytest.raises(DtvizInputError, match=r"num_classes = 7.*but it has 10; pass --null-row"):
        dtviz.load(save_train_wrapper(state, str(tmp_path / "bad.pt"), model="DiT-XL/2", num_classes=7))
    # LightningDiT's config says it in data.num_classes
    lstate = {k: v.clone() for k, v in randomized_lightningdit(tiny_lightningdit_config(num_classes=10)).state_dict().items()}
    src = dtviz.load(save_lightning_wrapper(lstate, str(tmp_path / "l.pt"), {"model_type": "LightningDiT-XL/1"},
                                            {"num_classes": 10}), device="cpu")
    assert src.num_classes == 10 and src.info.extra["null_row"] is True and "null" not in src.info.family_note


def test_plain_table_reading_is_stated_and_can_be_set(tmp_path, capsys):
    state = random_dit_state(dropout=0.0)
    path = save_checkpoint(state, str(tmp_path / "plain.pt"))
    src = dtviz.load(path, device="cpu")
    assert src.num_classes == 9 and "--null-row no" in src.info.family_note  # the reading taken, and how to change it
    assert src.family_ambiguous  # plain DiT keys: the dashboard asks for the family
    src = dtviz.load(path, device="cpu", null_row="no", num_heads=4)
    assert src.num_classes == 10 and "null row: no (set by the user)" in src.info.family_note
    assert_forward_matches(src.build_model(), state, 4, 999.0)  # the 10-row table loads strictly
    gen = Generator(src)
    assert gen.defaults["cfg_scale"] == 1.0  # the default the UI and CLI show: unguided
    images = gen.sample([9], SampleSettings(steps=2, sampler="ddim"))  # unguided by default: no null row
    assert images.shape[0] == 1 and np.isfinite(images).all()
    with pytest.raises(DtvizInputError, match="needs a null"):
        gen.sample([9], SampleSettings(steps=2, sampler="ddim", cfg_scale=4.0))
    assert main(["stats", path, "--null-row", "no", "--json"]) == 0
    assert '"num_classes": 10' in capsys.readouterr().out
    with pytest.raises(DtvizInputError, match="null_row must be one of"):
        dtviz.load(path, null_row="maybe")


# ------------------------------------------------------------------------------ 7: REPA qk-norm and legacy

def _repa_state(qk_norm: bool, seed: int) -> dict:
    state = random_dit_state(seed=seed, hidden=64, heads=4, depth=4, qk_norm=qk_norm)
    state.update({"projectors.0.0.weight": torch.randn(32, 64), "projectors.0.0.bias": torch.zeros(32),
                  "projectors.0.2.weight": torch.randn(32, 32), "projectors.0.2.bias": torch.zeros(32),
                  "projectors.0.4.weight": torch.randn(16, 32), "projectors.0.4.bias": torch.zeros(16)})
    return state


def test_repa_qk_norm_checkpoint_samples_like_the_formula(tmp_path):
    state = _repa_state(qk_norm=True, seed=2)
    assert "blocks.0.attn.q_norm.bias" in state  # timm's LayerNorm(head_dim): weight and bias
    path = save_train_wrapper(state, str(tmp_path / "0400000.pt"), model="SiT-XL/2", num_classes=10, encoder_depth=2,
                              enc_type="dinov2-vit-b", qk_norm=True, legacy=False, path_type="linear", cfg_prob=0.1)
    src = dtviz.load(path, device="cpu")
    assert src.family.key == "repa" and src.info.can_sample
    model = src.build_model()
    assert model.blocks[0].attn.num_heads == 4  # the head width is read off q_norm.weight (16)
    assert_forward_matches(model, state, 4, 0.4)
    assert src.info.extra["training_args"]["qk_norm"] is True and "the weights were used" not in src.info.family_note
    # args the weights contradict are named (the weights are what gets built)
    wrong = save_train_wrapper(state, str(tmp_path / "wrong.pt"), model="SiT-XL/2", num_classes=10, encoder_depth=2,
                               enc_type="dinov2-vit-b", qk_norm=False)
    assert "qk_norm = False (the weights: True); the weights were used" in dtviz.load(wrong).info.family_note


def test_repa_legacy_layout_is_renamed_as_the_release_does(tmp_path):
    state = _repa_state(qk_norm=False, seed=3)
    legacy = repa_legacy_state(state, encoder_depth=2)
    assert "decoder_blocks.1.attn.qkv.weight" in legacy and "blocks.2.attn.qkv.weight" not in legacy
    path = save_train_wrapper(legacy, str(tmp_path / "legacy.pt"), model="SiT-XL/2", num_classes=10, encoder_depth=2,
                              enc_type="dinov2-vit-b", qk_norm=False, legacy=True)
    src = dtviz.load(path, device="cpu", num_heads=4)
    assert src.family.key == "repa" and "legacy layout" in src.info.family_note
    assert_forward_matches(src.build_model(), state, 4, 0.4)
    # a plain legacy state dict (no projectors) is REPA too, and safetensors stay lazy through the renaming
    from safetensors.torch import save_file

    bare = {k: v.contiguous() for k, v in legacy.items() if not k.startswith("projectors.")}
    save_file(bare, str(tmp_path / "legacy.safetensors"))
    src = dtviz.load(str(tmp_path / "legacy.safetensors"), device="cpu", num_heads=4)
    assert src.family.key == "repa"
    assert_forward_matches(src.build_model(), state, 4, 0.7)


# ------------------------------------------------------------------------------ 8: LightningDiT without RoPE/SwiGLU

@pytest.mark.parametrize("options", [dict(use_qknorm=True, wo_shift=True), dict(wo_shift=True), dict(use_qknorm=False)])
def test_lightningdit_without_rope_and_swiglu_is_detected(tmp_path, options):
    opts = dict(use_rope=False, use_swiglu=False, use_rmsnorm=False, **options)
    cfg = tiny_lightningdit_config(num_classes=10, hidden=64, in_channels=3, **opts)
    state = {k: v.clone() for k, v in randomized_lightningdit(cfg, seed=4).state_dict().items()}
    # from the config the wrapper carries
    path = save_lightning_wrapper(state, str(tmp_path / "0080000.pt"), {"model_type": "LightningDiT-XL/1", **opts,
                                                                        "in_chans": 3}, {"num_classes": 10})
    src = dtviz.load(path, device="cpu", **({} if options.get("use_qknorm") else {"num_heads": 4}))
    assert src.family.key == "lightningdit" and src.t0 == 0.0 and src.info.can_sample
    assert "LightningDiT's train.py" in src.info.family_note
    assert_forward_matches(src.build_model(), state, 4, 0.3)
    # from the keys alone: wo_shift's (4D, D) adaLN tells; with shifts and LayerNorm qk-norm nothing does (stated)
    plain = dtviz.load(save_checkpoint(state, str(tmp_path / "plain.pt")), device="cpu")
    if options.get("wo_shift"):
        assert plain.family.key == "lightningdit" and "wo_shift" in plain.info.family_note
    else:
        assert plain.family.key == "dit" and "assumed DiT" in plain.info.family_note


def test_lightningdit_rmsnorm_only_is_detected_from_keys(tmp_path):
    cfg = tiny_lightningdit_config(num_classes=10, hidden=64, in_channels=3, use_rope=False, use_swiglu=False, use_qknorm=True)
    state = {k: v.clone() for k, v in randomized_lightningdit(cfg, seed=5).state_dict().items()}
    src = dtviz.load(save_checkpoint(state, str(tmp_path / "rms.pt")), device="cpu")
    assert src.family.key == "lightningdit" and src.t0 == 0.0 and src.info.can_sample
    assert src.build_model().blocks[0].attn.num_heads == 4  # RMSNorm qk-norm weight shows the head width


# ------------------------------------------------------------------------------ 9: head count

def test_head_count_from_args_or_stated_with_its_flag(tmp_path):
    state = random_dit_state(seed=6, hidden=128, heads=4)
    plain = save_checkpoint(state, str(tmp_path / "plain.pt"))
    src = dtviz.load(plain, device="cpu")
    note = src.info.family_note
    assert "assumed 2 heads" in note and "--num-heads" in note
    model = src.build_model()
    with pytest.raises(AssertionError):  # 2 heads is another model: the check can fail
        assert_forward_matches(model, state, 4, 500.0)
    assert_forward_matches(dtviz.load(plain, device="cpu", num_heads=4).build_model(), state, 4, 500.0)
    # a wrapper whose args record num_heads (forks of DiT's train.py): taken, nothing assumed
    forked = save_train_wrapper(state, str(tmp_path / "fork.pt"), model="DiT-T/2", num_classes=10, num_heads=4)
    src = dtviz.load(forked, device="cpu")
    assert "heads" not in src.info.family_note
    assert_forward_matches(src.build_model(), state, 4, 500.0)
    # a release model name whose width is not the file's: said, not used
    named = dtviz.load(save_train_wrapper(state, str(tmp_path / "xl.pt"), model="DiT-XL/2", num_classes=10))
    assert "'DiT-XL/2' (width 1152) does not match the weights' width 128" in named.info.family_note
    with pytest.raises(DtvizInputError, match="num_heads must be a whole number that divides the width 128; got 3"):
        dtviz.load(plain, num_heads=3)
    # a wrapper can hold anything: values of the wrong type count as not recorded, never as a traceback
    odd = save_train_wrapper(state, str(tmp_path / "odd.pt"), model=7, num_classes="ten", num_heads=torch.tensor(4))
    src = dtviz.load(odd, device="cpu")
    assert src.num_classes == 10 and "assumed 2 heads" in src.info.family_note and "--null-row no" in src.info.family_note
    assert build_parser()[0].parse_args(["sample", plain, "--out", str(tmp_path / "o"), "--num-heads", "4"]).num_heads == 4


def test_release_registries_give_the_published_sizes():
    from dtviz.sources.release_config import registry_size

    assert registry_size("DiT-XL/2") == dict(depth=28, hidden_size=1152, patch_size=2, num_heads=16)
    assert registry_size("SiT-B/4") == dict(depth=12, hidden_size=768, patch_size=4, num_heads=12)
    assert registry_size("LightningDiT-1p6B/1") == dict(depth=28, hidden_size=1792, patch_size=1, num_heads=28)
    assert registry_size("DiT-T/2") == {} and registry_size(None) == {}
