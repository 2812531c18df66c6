"""Train the built-in model: a SiT-convention flow-matching DiT on rendered glyph classes.

Reproducible (seeded) and resumable on CPU. Run through ``scripts/train_builtin.py``; the stages are

    data        render train / held-out glyph sets (cached in the work dir, never shipped)
    classifier  the GlyphClassifier used to score samples (shipped, small)
    diffusion   the DiT itself, with EMA, embedder snapshots along training and periodic class accuracy
    export      EMA weights + config.json + classifier + snapshots into assets/builtin/

SiT convention (Ma et al., 2024): x_t = t·x_data + (1 − t)·noise, t ∈ [0, 1] with 0 = noise, and the
model predicts the velocity x_data − noise. Labels are dropped to the null row with probability
``class_dropout_prob`` so classifier-free guidance works.
"""
from __future__ import annotations

import copy
import json
import os
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from dtviz.builtin.classifier import GlyphClassifier, train_classifier
from dtviz.builtin.glyphs import class_name, render_dataset, select_classes
from dtviz.models.dit import DiT, DiTConfig


@dataclass
class TrainConfig:
    num_classes: int = 256
    image_size: int = 16
    train_per_class: int = 256
    heldout_per_class: int = 16
    hidden_size: int = 128
    depth: int = 4
    num_heads: int = 4
    patch_size: int = 4
    batch_size: int = 256
    lr: float = 1e-3
    warmup: int = 200
    decay_from: int = 0  # 0: constant lr after warm-up (DiT's); else linear decay to 0 from this step to ``steps``
    label_init_std: float = 0.5  # DiT's 0.02 learns the class signal far slower at this size
    embedder_lr_mult: float = 1.0  # learning rate of t_embedder / y_embedder relative to ``lr`` (1: DiT's)
    label_lr_mult: float = 1.0  # learning rate of y_embedder (the label table) relative to ``lr``, on top of the above
    t_weight_decay: float = 0.0  # AdamW's decoupled weight decay on t_embedder alone (0: DiT's): the class-shared part of c
    # then costs less in the label rows than in t_emb, a test of whether the label rows align when t_emb cannot hold it
    label_weight_decay: float = 0.0  # AdamW's decoupled weight decay on the label table alone (0: DiT's): bounds the
    # random walk Adam's noisy steps give each row, while a class signal the loss keeps asking for stays (the paper's
    # Sec. 6 hypothesis 3, "only the coordinates providing robust semantic signal are driven to large magnitudes")
    adaln_weight_decay: float = 0.0  # AdamW's decoupled weight decay on the adaLN modulation weights alone (0: DiT's):
    # adaLN reads the class through W·SiLU(c), and a class signal can be made stronger by a larger column of W or by a
    # larger c_i; in I it is the column (issue 20). Decaying W makes the larger c_i the cheaper way (the paper's Sec. 6,
    # hypothesis 3, names weight decay)
    embedder_adam_eps: float = 0.0  # Adam's ε on both embedders (0: AdamW's 1e-8, DiT's). An ε far above √v makes their
    # step proportional to the gradient, as in SGD: under Adam a step is at most about lr whatever the gradient's size,
    # so dims adaLN hardly reads can drift as far as the read ones (issue 20: c̄'s head in I is such dims, nearly off
    # through SiLU); the question is whether with gradient-sized steps only the read dims grow. Pair it with
    # embedder_lr_mult
    t_mean_penalty: float = 0.0  # λ of λ·mean_i(m_i²), m = t_emb averaged over T_GRID (0: DiT's): the one part of t_emb that
    # is the same at every t costs this, while the t-dependent part and the label rows stay free (t_mean_penalty_loss)
    t_mean_penalty_steps: int = 0  # the penalty only before this step (0: at every step): does a shared part the label
    # rows took up under it stay there once t_emb is free again?
    class_dropout_prob: float = 0.1
    ema_decay: float = 0.998
    steps: int = 8000
    checkpoint_every: int = 250
    eval_every: int = 1000
    snapshot_steps: tuple = (0, 250, 500, 1000, 2000, 3000, 4000, 6000, 8000)
    sample_steps: int = 32
    cfg_scale: float = 4.0
    classifier_epochs: int = 4
    seed: int = 0
    min_distance: float = 3.0

    def dit_config(self) -> DiTConfig:
        return DiTConfig(input_size=self.image_size, patch_size=self.patch_size, in_channels=1,
                         hidden_size=self.hidden_size, depth=self.depth, num_heads=self.num_heads,
                         num_classes=self.num_classes, learn_sigma=False,
                         class_dropout_prob=self.class_dropout_prob)


@dataclass
class Workdir:
    path: str
    log_lines: list = field(default_factory=list)

    def file(self, name: str) -> str:
        os.makedirs(self.path, exist_ok=True)
        return os.path.join(self.path, name)

    def log(self, msg: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {msg}"
        print(line, flush=True)
        with open(self.file("train.log"), "a") as fh:
            fh.write(line + "\n")


# --------------------------------------------------------------------------------------------- data

def prepare_data(cfg: TrainConfig, work: Workdir) -> dict:
    path = work.file(f"glyphs-{cfg.num_classes}-{cfg.image_size}-{cfg.train_per_class}-{cfg.seed}.npz")
    if os.path.exists(path):
        data = dict(np.load(path))
        return {k: torch.from_numpy(v) for k, v in data.items()}
    t0 = time.time()
    cps = select_classes(cfg.num_classes, cfg.image_size, min_distance=cfg.min_distance)
    x_tr, y_tr = render_dataset(cps, cfg.train_per_class, cfg.image_size, seed=cfg.seed)
    x_ho, y_ho = render_dataset(cps, cfg.heldout_per_class, cfg.image_size, seed=cfg.seed + 10_000)
    np.savez(path, codepoints=np.array(cps), x_train=x_tr, y_train=y_tr, x_heldout=x_ho, y_heldout=y_ho)
    work.log(f"rendered {len(x_tr)} train + {len(x_ho)} held-out glyphs in {time.time() - t0:.1f}s")
    return prepare_data(cfg, work)


# --------------------------------------------------------------------------------------- classifier

def get_classifier(cfg: TrainConfig, data: dict, work: Workdir) -> tuple[GlyphClassifier, float]:
    path = work.file("classifier.safetensors")
    clf = GlyphClassifier(cfg.num_classes, size=cfg.image_size)
    if os.path.exists(path):
        clf.load_state_dict(load_file(path))
    else:
        clf = train_classifier(data["x_train"], data["y_train"].long(), cfg.num_classes,
                               epochs=cfg.classifier_epochs, seed=cfg.seed, log=work.log)
        save_file(clf.state_dict(), path)
    acc = (clf.predict(data["x_heldout"]) == data["y_heldout"].long()).float().mean().item()
    return clf.eval(), acc


# ---------------------------------------------------------------------------------------- diffusion

def flow_matching_loss(model: DiT, x_data: torch.Tensor, labels: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """SiT linear path: x_t = t x + (1 - t) ε, target velocity x - ε, t ~ U[0, 1]."""
    noise = torch.randn(x_data.shape, generator=gen)
    t = torch.rand(x_data.shape[0], generator=gen)
    tb = t.view(-1, 1, 1, 1)
    x_t = tb * x_data + (1 - tb) * noise
    return F.mse_loss(model(x_t, t, labels), x_data - noise)


T_GRID = torch.linspace(0, 1, 64)  # the t of training's U[0, 1], evenly: the mean over it is E_t up to O(1/64)


def t_mean_penalty_loss(model: DiT) -> torch.Tensor:
    """mean_i(m_i²) with m = E_t[t_embedder(t)] (d,) over T_GRID: the t-independent part of t_emb. A test of the
    mechanism behind the label rows' alignment (issue 20): when t_emb cannot hold the part of c that every condition
    shares at every t, does that part move into the label rows? Not a sparsity regulariser: it does not touch y."""
    return model.t_embedder(T_GRID).mean(0).pow(2).mean()


def t_mean_penalty_applies(cfg: TrainConfig, step: int) -> bool:
    """Is the t-mean penalty part of the loss at this (0-based) optimiser step?"""
    return bool(cfg.t_mean_penalty) and (cfg.t_mean_penalty_steps <= 0 or step < cfg.t_mean_penalty_steps)


@torch.no_grad()
def class_accuracy(model: DiT, clf: GlyphClassifier, cfg: TrainConfig, per_class: int = 2,
                   classes: int | None = None, seed: int = 1234) -> float:
    """Share of samples (per_class for each of the first ``classes``) the classifier names correctly."""
    from dtviz.sampling.samplers import EulerFlowSampler, guided_denoiser

    n = classes or cfg.num_classes
    labels = torch.arange(n).repeat_interleave(per_class)
    sampler = EulerFlowSampler(steps=cfg.sample_steps, t_start=0.0, t_end=1.0)
    denoise = guided_denoiser(model, null_class=cfg.num_classes, cfg_scale=cfg.cfg_scale)
    noise = torch.randn((len(labels), 1, cfg.image_size, cfg.image_size), generator=torch.Generator().manual_seed(seed))
    x = sampler.sample(denoise, noise, labels)
    pred = clf.predict((x + 1) / 2)
    return (pred == labels).float().mean().item()


def train_diffusion(cfg: TrainConfig, data: dict, clf: GlyphClassifier, work: Workdir, max_steps: int | None = None) -> tuple[DiT, list]:
    """Train (or resume) up to ``cfg.steps``; returns the EMA model and the accuracy log."""
    torch.manual_seed(cfg.seed)
    model = DiT(cfg.dit_config())
    model.initialize_weights(label_std=cfg.label_init_std)
    ema = copy.deepcopy(model).requires_grad_(False)
    opt = torch.optim.AdamW(param_groups(model, cfg), lr=cfg.lr, betas=(0.9, 0.99), weight_decay=0.0)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    step, history = 0, []
    state_path = work.file("state.pt")
    if os.path.exists(state_path):  # resume; our own file, plain tensors and lists only
        state = torch.load(state_path, weights_only=True)
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["opt"])
        gen.set_state(state["gen"])
        step, history = int(state["step"]), json.loads(state["history"])
        work.log(f"resumed at step {step}")
    x_all = data["x_train"] * 2 - 1  # [0, 1] -> [-1, 1]
    y_all = data["y_train"].long()
    stop = min(cfg.steps, step + max_steps) if max_steps else cfg.steps
    model.train()
    t_log = time.time()
    while step < stop:
        if step in cfg.snapshot_steps:
            save_snapshot(ema, step, work)
        idx = torch.randint(len(x_all), (cfg.batch_size,), generator=gen)
        lr = learning_rate(cfg, step)
        for group in opt.param_groups:
            group["lr"] = lr * group["lr_mult"]
        loss = flow_matching_loss(model, x_all[idx], y_all[idx], gen)
        if t_mean_penalty_applies(cfg, step):
            loss = loss + cfg.t_mean_penalty * t_mean_penalty_loss(model)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            for p_ema, p in zip(ema.parameters(), model.parameters()):
                p_ema.lerp_(p, 1 - cfg.ema_decay)
        step += 1
        if step % 50 == 0:
            work.log(f"step {step} loss {loss.item():.4f} ({(time.time() - t_log) / 50:.3f}s/step)")
            t_log = time.time()
        if step % cfg.eval_every == 0 or step == cfg.steps:
            acc = class_accuracy(ema.eval(), clf, cfg, per_class=2)
            history.append({"step": step, "class_accuracy": acc, "loss": loss.item()})
            work.log(f"step {step}: EMA class accuracy {acc:.3f}")
        if step % cfg.checkpoint_every == 0 or step == stop:
            torch.save({"model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(),
                        "gen": gen.get_state(), "step": step, "history": json.dumps(history)}, state_path + ".tmp")
            os.replace(state_path + ".tmp", state_path)
    if step in cfg.snapshot_steps:
        save_snapshot(ema, step, work)
    if step == cfg.steps and (not history or history[-1]["step"] != step):  # exporting a kept state between evals
        acc = class_accuracy(ema.eval(), clf, cfg, per_class=2)
        history.append({"step": step, "class_accuracy": acc, "loss": None})
        work.log(f"step {step}: EMA class accuracy {acc:.3f}")
    return ema.eval(), history


def param_groups(model: DiT, cfg: TrainConfig) -> list[dict]:
    """The embedders in groups of their own so that ``embedder_lr_mult`` / ``label_lr_mult`` can speed them up and
    ``embedder_adam_eps`` can make their steps gradient-sized (one group when none is set: the parameter order of
    earlier runs, so their optimiser states resume)."""
    named = list(model.named_parameters())
    rest = [p for n, p in named if not n.startswith(EMBEDDER_PREFIXES)]
    t_emb = [p for n, p in named if n.startswith("t_embedder.")]
    y_emb = [p for n, p in named if n.startswith("y_embedder.")]
    if cfg.embedder_adam_eps:
        adaln = [p for n, p in named if is_adaln_weight(n)] if cfg.adaln_weight_decay else []
        groups = [{"params": [p for p in rest if all(p is not q for q in adaln)], "lr_mult": 1.0}]
        groups += [{"params": adaln, "lr_mult": 1.0, "weight_decay": cfg.adaln_weight_decay}] if adaln else []
        return groups + [{"params": y_emb, "lr_mult": cfg.embedder_lr_mult * cfg.label_lr_mult, "eps": cfg.embedder_adam_eps,
                          "weight_decay": cfg.label_weight_decay},
                         {"params": t_emb, "lr_mult": cfg.embedder_lr_mult, "eps": cfg.embedder_adam_eps,
                          "weight_decay": cfg.t_weight_decay}]
    if cfg.t_weight_decay or cfg.label_weight_decay or cfg.adaln_weight_decay:
        adaln = [p for n, p in named if is_adaln_weight(n)]
        groups = [{"params": [p for n, p in named if not n.startswith(EMBEDDER_PREFIXES) and not is_adaln_weight(n)],
                   "lr_mult": 1.0},
                  {"params": y_emb, "lr_mult": cfg.embedder_lr_mult * cfg.label_lr_mult, "weight_decay": cfg.label_weight_decay},
                  {"params": t_emb, "lr_mult": cfg.embedder_lr_mult, "weight_decay": cfg.t_weight_decay}]
        if not cfg.adaln_weight_decay:  # the grouping of runs made before adaln_weight_decay existed
            groups[0]["params"] = rest
            return groups
        return groups + [{"params": adaln, "lr_mult": 1.0, "weight_decay": cfg.adaln_weight_decay}]
    if cfg.embedder_lr_mult == 1.0 and cfg.label_lr_mult == 1.0:
        return [{"params": list(model.parameters()), "lr_mult": 1.0}]
    if cfg.label_lr_mult == 1.0:  # the grouping of runs made before label_lr_mult existed
        return [{"params": rest, "lr_mult": 1.0}, {"params": t_emb + y_emb, "lr_mult": cfg.embedder_lr_mult}]
    return [{"params": rest, "lr_mult": 1.0}, {"params": t_emb, "lr_mult": cfg.embedder_lr_mult},
            {"params": y_emb, "lr_mult": cfg.embedder_lr_mult * cfg.label_lr_mult}]


def is_adaln_weight(name: str) -> bool:
    """The weight of a Linear that reads SiLU(c): blocks.{i}.adaLN_modulation.1.weight and the final layer's."""
    return name.endswith("adaLN_modulation.1.weight")


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """Linear warm-up over ``warmup`` steps, then constant (DiT's schedule), or from ``decay_from`` a linear decay
    that reaches 0 at ``steps`` (a learning-rate schedule, one of the faithful levers of issue 11)."""
    lr = cfg.lr * min(1.0, (step + 1) / cfg.warmup)
    if cfg.decay_from and step >= cfg.decay_from:
        lr *= max(0.0, 1.0 - (step - cfg.decay_from) / max(cfg.steps - cfg.decay_from, 1))
    return lr


EMBEDDER_PREFIXES = ("t_embedder.", "y_embedder.")


def save_snapshot(model: DiT, step: int, work: Workdir) -> None:
    """Only the embedder weights: enough for c, the statistics and the training-dynamics view."""
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items() if k.startswith(EMBEDDER_PREFIXES)}
    os.makedirs(work.file("snapshots"), exist_ok=True)
    save_file(state, os.path.join(work.path, "snapshots", f"step_{step:06d}.safetensors"), metadata={"step": str(step)})


# ------------------------------------------------------------------------------------------- export

def export(cfg: TrainConfig, model: DiT, clf: GlyphClassifier, data: dict, work: Workdir, out_dir: str,
           metrics: dict) -> None:
    import shutil

    os.makedirs(os.path.join(out_dir, "snapshots"), exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, os.path.join(out_dir, "model.safetensors"))
    save_file(clf.state_dict(), os.path.join(out_dir, "classifier.safetensors"))
    for name in sorted(os.listdir(os.path.join(work.path, "snapshots"))):
        shutil.copy(os.path.join(work.path, "snapshots", name), os.path.join(out_dir, "snapshots", name))
    cps = [int(c) for c in data["codepoints"]]
    config = {
        "family": "sit",
        "model": cfg.dit_config().to_dict(),
        "class_names": [class_name(c) for c in cps],
        "codepoints": cps,
        "image": {"size": cfg.image_size, "channels": 1, "value_range": [-1, 1]},
        "sampler": {"name": "euler", "steps": cfg.sample_steps, "cfg_scale": cfg.cfg_scale},
        "classifier": {"file": "classifier.safetensors", "input_range": [0, 1]},
        "training": asdict(cfg),
        "metrics": metrics,
    }
    with open(os.path.join(out_dir, "config.json"), "w") as fh:
        json.dump(config, fh, indent=1)
