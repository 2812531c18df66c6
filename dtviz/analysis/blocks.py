"""Per-block modulation: where each dimension of c acts (issue 15, part 2).

Every block i computes its modulation from c alone, m_i(c) = W_i · SiLU(c) + b_i, split into chunks:

    DiT / SiT / REPA / MG / MDT   blocks.{i}.adaLN_modulation.1       shift_msa, scale_msa, gate_msa,
                                                                      shift_mlp, scale_mlp, gate_mlp
    LightningDiT wo_shift         blocks.{i}.adaLN_modulation.1       scale_msa, gate_msa, scale_mlp, gate_mlp
    DiT-family final layer        final_layer.adaLN_modulation.1      shift, scale
    diffusers DiT                 transformer_blocks.{i}.norm1.linear (AdaLayerNormZero: DiT's six, in DiT's order,
                                  fed by the block's own norm1.emb); final proj_out_1: shift, scale (block 0's emb)
    SD3 / Flux (text-to-image)    transformer_blocks.{i}.norm1.linear (six) and norm1_context.linear (six, prefixed
                                  "context."; SD3's last block: AdaLayerNormContinuous scale, shift), SD3.5's
                                  SD35AdaLayerNormZeroX (nine: + shift_msa2, scale_msa2, gate_msa2), Flux's
                                  single_transformer_blocks.{i}.norm.linear (shift_msa, scale_msa, gate_msa; numbered
                                  after the double blocks); final norm_out.linear (AdaLayerNormContinuous: scale, shift)

(chunk orders as the installed diffusers' normalization.py unpacks them). MDT's blocks are numbered in execution
order (en_inblocks, en_outblocks, de_blocks); its training-only sideblocks are left out.

Two read-outs, both without sampling:

    contribution[k][b, j] = ‖W_b,k[:, j]‖₂ · mean_rows |SiLU(c)_j|    dim j's share in chunk k of block b
    relative_change[b][k] = mean_rows ‖m_b,k(c) − m_b,k(P(c))‖ / ‖m_b,k(c)‖   ("all": the whole modulation of b)

P is a ``PruneSpec`` (dtviz.pruning.spec): a global mask from c̄ at t0, or each row's own. Since SiLU(0) = 0,
m(c) − m(P(c)) = W · (SiLU(c)·(1 − keep)): the bias cancels. Rows are the conditions (classes or prompts); the null
(CFG) row is never one. All in float64 on the CPU, one modulation's weight at a time.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from dtviz.analysis.stats import silu
from dtviz.errors import DtvizInputError
from dtviz.pruning.spec import PruneSpec, keep_mask
from dtviz.pruning.hooks import adaln_modules
from dtviz.analysis.stats import mean_vector
from dtviz.analysis.structure import head_size

DIT_CHUNKS = ("shift_msa", "scale_msa", "gate_msa", "shift_mlp", "scale_mlp", "gate_mlp")
WO_SHIFT_CHUNKS = ("scale_msa", "gate_msa", "scale_mlp", "gate_mlp")  # LightningDiT wo_shift
FINAL_CHUNKS = ("shift", "scale")  # DiT FinalLayer, diffusers DiT proj_out_1
CONTINUOUS_CHUNKS = ("scale", "shift")  # diffusers AdaLayerNormContinuous
SINGLE_CHUNKS = DIT_CHUNKS[:3]  # diffusers AdaLayerNormZeroSingle (Flux single blocks)
SD35X_CHUNKS = DIT_CHUNKS + ("shift_msa2", "scale_msa2", "gate_msa2")  # SD35AdaLayerNormZeroX
FINAL = -1  # the block index of the final layer
AVERAGED_MAX_ROWS = 256  # rows (classes / prompts) the per-block view averages over: evenly spaced, all when fewer


def averaged_rows(n: int) -> tuple:
    """The row indices the per-block view averages over: all n, or AVERAGED_MAX_ROWS evenly spaced from first to last."""
    return tuple(range(n)) if n <= AVERAGED_MAX_ROWS else tuple(
        np.linspace(0, n - 1, AVERAGED_MAX_ROWS).round().astype(int).tolist())


# -------------------------------------------------------------------------------------- modulations

@dataclass
class Modulation:
    """One Linear that reads SiLU(c): its block (FINAL for the final layer), chunk names in output order, and
    weight (out, d) / bias (out,) as stored (converted to float64 when used). ``condition``: rows of the c this
    Linear reads, f(ids, t) -> (N, d), when it is not the source's own c (a diffusers DiT block's own norm1.emb)."""

    block: int
    name: str
    chunks: tuple[str, ...]
    weight: torch.Tensor
    bias: torch.Tensor | None
    condition: Callable | None = None

    def matrices(self) -> tuple[np.ndarray, np.ndarray]:
        """(out, d) and (out,) float64."""
        w = self.weight.detach().double().cpu().numpy()
        b = np.zeros(w.shape[0]) if self.bias is None else self.bias.detach().double().cpu().numpy()
        return w, b


def _chunk_names(out: int, d: int, final: bool, name: str) -> tuple[str, ...]:
    table = {2: FINAL_CHUNKS} if final else {6: DIT_CHUNKS, 4: WO_SHIFT_CHUNKS}
    if out % d or out // d not in table:
        raise DtvizInputError(f"expected {name} to output {' or '.join(f'{k}·d' for k in table)} values (d = {d}); "
                              f"it outputs {out}.")
    return table[out // d]


def native_modulations(model: torch.nn.Module) -> list[Modulation]:
    """Every ``adaLN_modulation`` Linear of a dtviz.models backbone, blocks in execution order, then the final layer."""
    out, index = [], 0
    for name, module in adaln_modules(model):
        if name.startswith("sideblocks."):  # MDT's side-interpolator runs in training only
            continue
        linear = module[-1]
        final = name.startswith("final_layer")
        chunks = _chunk_names(linear.out_features, linear.in_features, final, name)
        out.append(Modulation(FINAL if final else index, name + f".{len(module) - 1}", chunks, linear.weight, linear.bias))
        index += not final
    return out


def diffusers_dit_modulations(transformer: torch.nn.Module, device) -> list[Modulation]:
    """A diffusers DiTTransformer2DModel: each block's norm1.linear on its own norm1.emb; proj_out_1 on block 0's."""

    def reader(emb):
        @torch.no_grad()
        def condition(ids: np.ndarray, t: float) -> np.ndarray:
            labels = torch.as_tensor(ids, dtype=torch.long, device=device)
            ts = torch.full((len(ids),), float(t), device=device)
            return emb(ts, labels, hidden_dtype=torch.float32).double().cpu().numpy()
        return condition

    mods = []
    for i, block in enumerate(transformer.transformer_blocks):
        norm = block.norm1
        mods.append(Modulation(i, f"transformer_blocks.{i}.norm1.linear", DIT_CHUNKS, norm.linear.weight,
                               norm.linear.bias, reader(norm.emb)))
    proj = transformer.proj_out_1
    mods.append(Modulation(FINAL, "proj_out_1", FINAL_CHUNKS, proj.weight, proj.bias,
                           reader(transformer.transformer_blocks[0].norm1.emb)))
    return mods


def t2i_modulations(path: str, dim: int) -> list[Modulation]:
    """SD3/Flux: the adaLN Linears read from the transformer's weight files (only those tensors)."""
    from dtviz.sources.t2i_pipeline import read_prefixed

    tdir = os.path.join(path, "transformer")
    keys = _weight_keys(tdir)
    sizes = {6: DIT_CHUNKS, 9: SD35X_CHUNKS, 3: SINGLE_CHUNKS, 2: CONTINUOUS_CHUNKS}
    double = sorted({int(k.split(".")[1]) for k in keys if k.startswith("transformer_blocks.")})
    single = sorted({int(k.split(".")[1]) for k in keys if k.startswith("single_transformer_blocks.")})
    plan = [(i, f"transformer_blocks.{i}.{n}.linear", p) for i in double
            for n, p in (("norm1", ""), ("norm1_context", "context."))]
    plan += [(len(double) + i, f"single_transformer_blocks.{i}.norm.linear", "") for i in single]
    plan += [(FINAL, "norm_out.linear", "")]
    mods = []
    for block, name, prefix in plan:
        if name + ".weight" not in keys:
            continue
        tensors = read_prefixed(tdir, name + ".")
        w = tensors["weight"]
        if w.shape[0] % dim or w.shape[0] // dim not in sizes:
            raise DtvizInputError(f"expected {name} to output 2, 3, 6 or 9 × {dim} values; it outputs {w.shape[0]}.")
        chunks = CONTINUOUS_CHUNKS if block == FINAL else sizes[w.shape[0] // dim]
        mods.append(Modulation(block, name, tuple(prefix + c for c in chunks), w, tensors.get("bias")))
    return mods


def _weight_keys(tdir: str) -> set[str]:
    import json

    from safetensors import safe_open

    names = set(os.listdir(tdir)) if os.path.isdir(tdir) else set()
    index = [n for n in names if n.endswith(".safetensors.index.json")]
    if index:
        with open(os.path.join(tdir, index[0]), encoding="utf-8") as fh:
            return set(json.load(fh).get("weight_map", {}))
    keys = set()
    for name in sorted(n for n in names if n.endswith(".safetensors")):
        with safe_open(os.path.join(tdir, name), framework="pt") as fh:
            keys.update(fh.keys())
    if not keys:
        raise DtvizInputError("the per-block view reads the transformer's .safetensors weights; transformer/ has none.")
    return keys


def modulations(source) -> list[Modulation]:
    """The modulation Linears of ``source``'s backbone (native DiT family, diffusers DiT, SD3 / Flux)."""
    key = source.family.key
    if key == "diffusers":
        return diffusers_dit_modulations(source.transformer, source.device)
    if key in ("sd3", "flux"):
        return t2i_modulations(source.info.extra["path"], source.dim)
    if key in ("pixart", "sana"):
        raise DtvizInputError("PixArt and Sana feed one shared adaLN (adaln_single) from the timestep alone, so no "
                              "block reads a dim of c the others do not; the per-block view reads SD3, Flux, diffusers "
                              "DiT and native DiT-family models.")
    if hasattr(source, "build_model"):
        return native_modulations(source.build_model())
    raise DtvizInputError(f"the per-block view needs a model's adaLN weights; {source.info.name!r} is a "
                          f"{source.family.label} (c alone), which has none.")


# ------------------------------------------------------------------------------------------ read-outs

def _rows(source, mod: Modulation, ids: np.ndarray, t, cache: dict) -> np.ndarray:
    """(N, d) float64 c that ``mod`` reads."""
    if mod.condition is None:
        if "c" not in cache:
            cache["c"] = source.embeddings(ids, t=t).astype(np.float64)
        return cache["c"]
    return mod.condition(ids, source.t0 if t is None else t)


def keep_rows(source, spec: PruneSpec, c: np.ndarray) -> np.ndarray:
    """(N, d) bool, True = kept by P: the global mask from c̄ over all rows at t0 (as dtviz.pruning.spec.global_mask,
    hence the same at any t), or each row's own mask."""
    if spec.mask == "global":
        return np.broadcast_to(keep_mask(mean_vector(source.embeddings()), spec), c.shape)
    return keep_mask(c, spec)


@dataclass
class ModulationChange:
    """The change of each block's modulation under one spec:

        blocks  [{"block": i, "relative_change": {chunk: v, ..., "all": v}, "change_vs_spread": s}]
        final   {chunk: v, ..., "all": v}         the final layer's relative change
        final_vs_spread  s                         the final layer's change against its spread

    relative_change = mean over rows of ‖Δm‖ / ‖m(c)‖; change_vs_spread = mean over rows of ‖Δm‖ divided by the
    between-row spread of the modulation, sqrt(mean over rows of ‖m − m̄‖²) (all chunks): what the class signal
    in m is, so that a change small against m but large against the spread shows (it orders the damage)."""

    blocks: list
    final: dict
    final_vs_spread: float = float("nan")

    def to_json(self) -> dict:
        num = lambda v: None if v is None or not np.isfinite(v) else float(v)  # noqa: E731
        clean = lambda d: {k: num(v) for k, v in d.items()}  # noqa: E731
        return {"blocks": [{"block": b["block"], "relative_change": clean(b["relative_change"]),
                            "change_vs_spread": num(b.get("change_vs_spread"))} for b in self.blocks],
                "final": clean(self.final), "final_vs_spread": num(self.final_vs_spread)}


def modulation_change(source, specs, t: float | None = None, classes=None, mods=None) -> list[ModulationChange]:
    """For each spec of ``specs`` (a PruneSpec or a list), mean over rows of ‖Δm‖/‖m(c)‖ per block and chunk.

    Per-sample masks come from each row's source c (for a diffusers DiT, block 0's, as dtviz.pruning.spec prunes it)."""
    specs = [specs] if isinstance(specs, PruneSpec) else list(specs)
    ids = source._class_ids(classes)
    mods = modulations(source) if mods is None else mods
    cache: dict = {}
    base = source.embeddings(ids, t=t).astype(np.float64)  # (N, d): the c that masks are read from
    keeps = [keep_rows(source, spec, base) for spec in specs]
    # per spec, per block: {chunk: (N,) ‖Δ‖², (N,) ‖m‖²}; per block: the spread ‖m − m̄‖² of each row
    sums = [dict() for _ in specs]
    spread: dict = {}
    for mod in mods:
        w, b = mod.matrices()  # (K·D, d), (K·D,)
        s = silu(_rows(source, mod, ids, t, cache))  # (N, d)
        m = s @ w.T + b  # (N, K·D)
        spread[mod.block] = spread.get(mod.block, 0.0) + ((m - m.mean(0)) ** 2).sum(1)
        parts = np.split(np.arange(w.shape[0]), len(mod.chunks))
        for spec_sums, keep in zip(sums, keeps):
            delta = (s * ~keep) @ w.T  # (N, K·D) = m(c) − m(P(c))
            entry = spec_sums.setdefault(mod.block, {})
            for name, rows in zip(mod.chunks, parts):
                entry[name] = ((delta[:, rows] ** 2).sum(1), (m[:, rows] ** 2).sum(1))
    out = []
    for spec_sums in sums:
        blocks, final, final_spread = [], {}, float("nan")
        for block in sorted(spec_sums, key=lambda b: (b == FINAL, b)):
            chunks = spec_sums[block]
            with np.errstate(divide="ignore", invalid="ignore"):
                values = {name: float(np.mean(np.sqrt(d2) / np.sqrt(m2))) for name, (d2, m2) in chunks.items()}
                d2 = sum(v[0] for v in chunks.values())
                m2 = sum(v[1] for v in chunks.values())
                values["all"] = float(np.mean(np.sqrt(d2) / np.sqrt(m2)))
                vs_spread = float(np.mean(np.sqrt(d2)) / np.sqrt(np.mean(spread[block])))
            if block == FINAL:
                final, final_spread = values, vs_spread
            else:
                blocks.append({"block": block, "relative_change": values, "change_vs_spread": vs_spread})
        out.append(ModulationChange(blocks, final, final_spread))
    return out


def change_over_t(source, spec: PruneSpec, ts, classes=None, mods=None) -> dict:
    """The "all" relative change and the change against the spread, per block and the final layer, at every t of
    ``ts`` (e.g. the source's sampling schedule): {"t": [...], "relative_change": (T, B+1), "change_vs_spread":
    (T, B+1), "blocks": [...], "mean"/"max": {measure: (B+1,)}} with the final layer last. t0 alone can understate
    what a pruning does later in sampling, where c has moved."""
    mods = modulations(source) if mods is None else mods
    rel, spr, blocks = [], [], None
    for t in ts:
        ch = modulation_change(source, spec, t=float(t), classes=classes, mods=mods)[0]
        blocks = [b["block"] for b in ch.blocks]
        rel.append([b["relative_change"]["all"] for b in ch.blocks] + [ch.final.get("all", np.nan)])
        spr.append([b["change_vs_spread"] for b in ch.blocks] + [ch.final_vs_spread])
    rel, spr = np.array(rel, dtype=np.float64), np.array(spr, dtype=np.float64)
    return {"t": [float(t) for t in ts], "blocks": blocks, "relative_change": rel, "change_vs_spread": spr,
            "mean": {"relative_change": np.nanmean(rel, 0), "change_vs_spread": np.nanmean(spr, 0)},
            "max": {"relative_change": np.nanmax(rel, 0), "change_vs_spread": np.nanmax(spr, 0)}}


@dataclass
class Contributions:
    """contribution[chunk] (rows, dims): ‖W[:, j]‖₂ · mean |SiLU(c)_j| with dims ordered by |c̄| descending.

    rows are labelled ``row_labels`` ("block i", "final"); ``order`` (d,) maps columns to dims of c; ``head`` (d,)
    bool marks columns whose |c̄| ≥ τ, c̄ the mean over ALL rows at t (the head ``dtviz stats`` and the dashboard's
    header count, whichever rows the activations are averaged over). A chunk absent from a row (e.g. shift_msa in
    the final layer) is NaN."""

    chunks: dict
    row_labels: list
    order: np.ndarray
    head: np.ndarray
    abs_mean: np.ndarray  # (d,) |c̄| in column order


def contributions(source, tau: float = 0.01, t: float | None = None, classes=None, mods=None) -> Contributions:
    ids = source._class_ids(classes)
    mods = modulations(source) if mods is None else mods
    c = source.embeddings(ids, t=t).astype(np.float64)
    abs_mean = np.abs(mean_vector(c if len(ids) == source.num_classes else source.embeddings(t=t).astype(np.float64)))
    order = np.argsort(-abs_mean, kind="stable")
    blocks = sorted({m.block for m in mods}, key=lambda b: (b == FINAL, b))
    rows = {b: i for i, b in enumerate(blocks)}
    names = list(dict.fromkeys(n for m in mods for n in m.chunks)) + ["all"]
    d = c.shape[1]
    out = {n: np.full((len(blocks), d), np.nan) for n in names}
    all_sq = np.zeros((len(blocks), d))
    cache: dict = {}
    for mod in mods:
        w, _ = mod.matrices()
        act = np.abs(silu(_rows(source, mod, ids, t, cache))).mean(0)  # (d,)
        for name, part in zip(mod.chunks, np.split(w, len(mod.chunks))):
            col = np.sqrt((part ** 2).sum(0))  # (d,) ‖W_chunk[:, j]‖₂
            out[name][rows[mod.block]] = (col * act)[order]
            all_sq[rows[mod.block]] += ((col * act) ** 2)[order]
    out["all"] = np.sqrt(all_sq)
    labels = [("final" if b == FINAL else f"block {b}") for b in blocks]
    return Contributions(out, labels, order, abs_mean[order] >= tau, abs_mean[order])


def change_curves(source, taus, mode: str = "tail", mask: str = "global", t: float | None = None, classes=None,
                  mods=None) -> dict:
    """relative_change against τ: {"tau": [...], "<chunk>": (len(taus), blocks + 1) with the final layer last}."""
    taus = [float(x) for x in taus]
    mods = modulations(source) if mods is None else mods
    changes = modulation_change(source, [PruneSpec(mode=mode, tau=x, mask=mask) for x in taus], t, classes, mods)
    names = list(dict.fromkeys(k for b in changes[0].blocks for k in b["relative_change"]))
    curves = {"tau": taus, "blocks": [b["block"] for b in changes[0].blocks]}
    for name in names:
        curves[name] = np.array([[b["relative_change"].get(name, np.nan) for b in ch.blocks] for ch in changes])
    curves["final"] = {k: np.array([ch.final.get(k, np.nan) for ch in changes]) for k in changes[0].final}
    return curves


# ------------------------------------------------------------------------------------ where the class is read

@dataclass
class ClassRead:
    """Where adaLN reads the class from, beside where c̄ is large (issue 20; no sampling). Over all modulations m:

        weight_[j]   = sqrt(Σ_m Σ_r W_m[r, j]²)                 how strongly adaLN weighs SiLU(c)_j
        between_[j]  = Var_k(c_kj)                                the between-condition variance of c in dim j
        read_[j]     = Σ_m Σ_r W_m[r, j]² · Var_k(SiLU(c_kj))     the between-condition variance of the modulations
                                                                  that dim j puts there alone (exact when only j varies)

    k rows are the conditions (never the null row). ``head`` is the top-``k`` |c̄ᵢ| dims (c̄ over all rows), ``rho_*``
    are Spearman rank correlations over the d dims, ``*_share`` the shares of Σ read_ held by the head, by the k dims
    where between_ is largest and by the k largest read_ (uniform: k / d)."""

    k: int
    head: np.ndarray
    weight_: np.ndarray
    between_: np.ndarray
    read_: np.ndarray
    rho_between_weight: float
    rho_magnitude_weight: float
    head_share: float
    between_top_share: float
    read_top_share: float
    modulations: int

    def to_json(self) -> dict:
        d = len(self.weight_)
        return {"k": self.k, "d": d, "modulations": self.modulations, "head": [int(i) for i in self.head],
                "rho_between_weight": self.rho_between_weight,
                "rho_magnitude_weight": self.rho_magnitude_weight, "head_share": self.head_share,
                "between_top_share": self.between_top_share, "read_top_share": self.read_top_share,
                "uniform_share": self.k / d}


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's ρ (scipy's), NaN when either side is constant."""
    from scipy.stats import spearmanr

    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b)[0])


def class_read(source, k: int | None = None, t: float | None = None, classes=None, mods=None) -> ClassRead:
    """ClassRead of ``source`` at t (t0 by default), float64; k defaults to head_is_class's head size
    (dtviz.analysis.structure.head_size: 20, fewer when d < 200). A diffusers DiT block reads its own norm1.emb rows."""
    ids = source._class_ids(classes)
    mods = modulations(source) if mods is None else mods
    c = source.embeddings(ids, t=t).astype(np.float64)  # (N, d)
    if len(c) < 2:
        raise DtvizInputError(f"where adaLN reads the class needs at least 2 conditions; got {len(c)}.")
    d = c.shape[1]
    k = head_size(d) if k is None else min(int(k), d)
    weight_sq, read = np.zeros(d), np.zeros(d)
    cache: dict = {"c": c}  # the rows a modulation on the source's own c reads (_rows): computed once
    for mod in mods:
        w, _ = mod.matrices()
        col_sq = (w ** 2).sum(0)  # (d,) Σ_r W[r, j]²
        weight_sq += col_sq
        read += col_sq * silu(_rows(source, mod, ids, t, cache)).var(0)
    magnitude = np.abs(mean_vector(c))
    head = np.argsort(-magnitude, kind="stable")[:k]
    between = c.var(0)
    total = read.sum()
    share = lambda dims: float(read[dims].sum() / total) if total > 0 else float("nan")  # noqa: E731
    weight = np.sqrt(weight_sq)
    return ClassRead(k, head, weight, between, read, spearman(between, weight), spearman(magnitude, weight),
                     share(head), share(np.argsort(-between, kind="stable")[:k]), share(np.argsort(-read)[:k]), len(mods))
