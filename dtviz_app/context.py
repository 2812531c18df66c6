"""``Ctx``: what every page gets from the sidebar — the opened source, the settings (t, part, τ or
top-k) and cached accessors for E, the statistics and the texts that titles and the model card show.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dtviz.sources.base import row_noun
from dtviz_app.cache import _generator, condition_stats, embeddings
from dtviz_app.access import is_upload, link_name


# ================================================================================ context

@dataclass
class Ctx:
    """Everything a page needs: the opened source, the settings, and cached accessors."""

    source_key: str
    family: str
    device: str
    labels: str | None
    source: Any
    t: float | None
    part: str
    threshold: str  # "tau" or "topk"
    tau_setting: float
    k: int
    _memo: dict = field(default_factory=dict, repr=False)

    # --- cached data --------------------------------------------------------------------------------
    @property
    def key(self) -> tuple:
        return (self.source_key, self.family, self.device, self.labels, self.t, self.part)

    @property
    def model_key(self) -> tuple:
        """(source, family, device, labels): what ``load_source`` and ``generator`` are cached by."""
        return (self.source_key, self.family, self.device, self.labels)

    @property
    def E(self) -> np.ndarray:
        if "E" not in self._memo:
            self._memo["E"] = embeddings(*self.key)
        return self._memo["E"]

    @property
    def stats(self):
        if "stats" not in self._memo:
            self._memo["stats"] = condition_stats(*self.key)
        return self._memo["stats"]

    @property
    def tau(self) -> float:
        """τ in force: the setting, or in top-k mode the k-th largest |c̄_i| (so the head is the top k)."""
        if self.threshold != "topk":
            return self.tau_setting
        if "tau_k" not in self._memo:
            from dtviz.analysis.stats import topk_dims

            mv = self.stats.mean_vector_
            head = topk_dims(mv, self.k)
            self._memo["tau_k"] = float(np.abs(mv[head]).min()) if head.size else float("inf")
        return self._memo["tau_k"]

    @property
    def at_tau(self) -> dict:
        if "at_tau" not in self._memo:
            self._memo["at_tau"] = self.stats.at_tau(self.tau)
        return self._memo["at_tau"]

    @property
    def head(self) -> np.ndarray:
        return np.asarray(self.at_tau["head_dims"], dtype=np.int64)

    @property
    def table_row(self) -> dict:
        if "row" not in self._memo:
            self._memo["row"] = self.stats.table_row()
        return self._memo["row"]

    # --- descriptions -------------------------------------------------------------------------------
    @property
    def info(self):
        return self.source.info

    @property
    def names(self) -> tuple[str, ...]:
        """The row names, copied once per run (a tuple, so no page can change the source's list): format_func
        calls this once per option, so a copy per call made rendering quadratic in N."""
        if "names" not in self._memo:
            self._memo["names"] = tuple(self.source.class_names)
        return self._memo["names"]

    @property
    def row(self) -> str:
        """What one row is: "class", "prompt" or "condition" (dtviz.sources.base.row_noun)."""
        return row_noun(self.source)[0]

    @property
    def rows(self) -> str:
        """The plural of ``row``: "classes", "prompts" or "conditions"."""
        return row_noun(self.source)[1]

    @property
    def model_label(self) -> str:
        return f"{self.info.name} ({self.info.family.label})"

    @property
    def t_text(self) -> str:
        conv = self.info.family.convention
        if conv is None or self.t is None:
            return "no t (matrix)"
        if self.info.family.key == "trajectory":  # t is the captured step (dtviz.sources.trajectory)
            return self.source.step_text(int(self.t))
        t0 = self.source.t0
        if self.t == t0:  # a pipeline's t0 is its scheduler's first step, which assumes a step count: say which
            note = self.source.t0_note.removeprefix(f"t0 = {t0:g}, ")
            where = f" (t0: {note})" if note else " (t0, noise)"
        else:
            where = " (data end)" if self.t == conv.data_at else ""
        return f"t = {self.t:g}{where}"

    @property
    def tau_text(self) -> str:
        if self.threshold == "topk":
            return f"top-{self.k} (τ = {self.tau:.4g})"
        return f"τ = {self.tau:g}"

    @property
    def title_context(self) -> str:
        """What every title says: model, t, part, τ."""
        return f"{self.model_label} · {self.t_text} · part {self.part} · {self.tau_text}"

    def plot_context(self, with_tau: bool = True) -> dict:
        """The ``context`` the figure builders put under every title: model, family, d, t, part (and τ)."""
        conv = self.info.family.convention
        t = None if conv is None or self.t is None else f"{self.t:g}" + (" (t0)" if self.t == self.source.t0 else "")
        if t is not None and self.info.family.key == "trajectory":
            t = self.source.step_text(int(self.t))
        tau = None
        if with_tau:
            tau = f"{self.tau:.4g} (top-{self.k})" if self.threshold == "topk" else f"{self.tau:g}"
        return {"model": self.info.name, "family": self.info.family.label, "d": self.info.dim, "t": t,
                "part": self.part, "tau": tau, "row": self.row, "rows": self.rows}

    def settings(self) -> dict:
        return {"source": f"upload: {self.info.name}" if is_upload(self.source_key) else link_name(self.source_key),
                "family": self.family, "device": self.device, "t": self.t, "part": self.part,
                "threshold": "top-k" if self.threshold == "topk" else "τ", "tau": self.tau,
                "k": self.k if self.threshold == "topk" else None}

    def model_card(self) -> dict:
        info, row, at = self.info, self.table_row, self.at_tau
        conv = info.family.convention
        card = {
            "model": info.name,
            "family": info.family.label,
            "family note": info.family_note,
            "d": info.dim,
            self.rows: info.num_classes,  # "classes", "prompts" or "conditions": what the rows are
            "parameters": format_count(info.parameters),
            "t convention": conv.describe() + "; " + (self.source.t0_note or f"t0 = {self.source.t0:g}")
            if conv else "none (precomputed matrix)",
            "device": str(info.device),
            "t": self.t_text, "part": self.part,
            "PR (of mean vector c̄)": f"{row['pr']['mean_vector']:.2f}",
            f"PR (mean over {self.rows})": f"{row['pr']['per_class_mean']:.2f}",
            "nPR (of mean vector c̄)": f"{100 * row['npr']['mean_vector']:.2f}%",
            f"nPR (mean over {self.rows})": f"{100 * row['npr']['per_class_mean']:.2f}%",
        }
        if row.get("cosine") and info.num_classes > 1:  # one row has no pairs
            cos = row["cosine"]
            card["cosine (off-diagonal mean)"] = f"{cos['mean']:.4f}"
            card["cosine min / max"] = f"{cos['min']:.4f} / {cos['max']:.4f}"
        card[f"head dims at {self.tau_text}"] = f"{at['head_count']} of {info.dim}"
        card[f"s_tail (c̄ / per-{self.row} mean)"] = f"{at['s_tail']['mean_vector']:.3f} / {at['s_tail']['per_class_mean']:.3f}"
        return card


def format_count(n: int | None) -> str:
    if n is None:
        return "—"
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.3g} {unit} ({n:,})"
    return f"{n:,}"


def generator(ctx: Ctx):
    """(Generator, None) for a model that can sample, else (None, why not) — e.g. a matrix's sample_note."""
    if not ctx.info.can_sample:
        return None, ctx.info.sample_note or f"{ctx.info.name} cannot generate samples."
    return _generator(*ctx.model_key)
