"""The computations behind the dashboard views: head/tail panels and projections (Fig. 13), the
projection cache, nearest neighbours, and the t / training-step dynamics (Fig. 12)."""
import os
import sys
import threading
import time

import numpy as np
import pytest
from safetensors.torch import save_file

import dtviz
from dtviz.analysis import dynamics
from dtviz.errors import DtvizInputError
from dtviz.analysis.neighbours import nearest
from dtviz.analysis.projection import ProjectionCache, head_tail_views, pca, project
from tests.factories import randomized_dit, tiny_config


# ================================================================================= head / tail panels

def known_matrix():
    """4 classes × 6 dims; |c̄| = [4, 0.001, 2, 0.002, 0.5, 3] ranks dims 0 > 5 > 2 > 4 > 3 > 1."""
    mean = np.array([4.0, 0.001, -2.0, 0.002, 0.5, 3.0])
    offsets = np.array([[1, 0, 1, 0, 0, -1], [-1, 0, -1, 0, 0, 1], [0.5, 0, 0, 0, 0.1, 0], [-0.5, 0, 0, 0, -0.1, 0]])
    return mean + offsets


def test_head_tail_views_are_the_documented_column_subsets():
    E = known_matrix()
    views = head_tail_views(E, head_idx=[0, 2, 4, 5], top_head=2)
    assert list(views) == ["full c", "head only", "tail only", "tail without top head"]
    np.testing.assert_array_equal(views["full c"], E)
    np.testing.assert_array_equal(views["head only"], E[:, [0, 2, 4, 5]])
    np.testing.assert_array_equal(views["tail only"], E[:, [1, 3]])
    # the two largest |c̄_i| (dims 0 and 5) removed, everything else kept
    np.testing.assert_array_equal(views["tail without top head"], E[:, [1, 2, 3, 4]])
    by_index = head_tail_views(E, [0, 2, 4, 5], top_head=[2])
    np.testing.assert_array_equal(by_index["tail without top head"], E[:, [0, 1, 3, 4, 5]])


def test_head_tail_views_default_top_head_and_errors():
    rng = np.random.default_rng(0)
    E = rng.normal(size=(10, 20))
    head = np.arange(8)
    views = head_tail_views(E, head)
    assert views["tail without top head"].shape == (10, 15)  # min(5, 8) strongest head dims removed
    assert head_tail_views(E, [3, 4])["tail without top head"].shape == (10, 18)
    with pytest.raises(DtvizInputError, match="head is empty"):
        head_tail_views(E, [])
    with pytest.raises(DtvizInputError, match="tail is empty"):
        head_tail_views(E, np.arange(20))
    with pytest.raises(DtvizInputError):
        head_tail_views(E, [25])


# ========================================================================================== project

def two_clusters(n_each=40, d=30, seed=1):
    rng = np.random.default_rng(seed)
    shift = np.zeros(d)
    shift[:3] = 6.0
    X = np.vstack([rng.normal(size=(n_each, d)), rng.normal(size=(n_each, d)) + shift])
    return X, np.repeat([0, 1], n_each)


def test_pca_separates_a_planted_two_cluster_set_and_is_deterministic():
    X, labels = two_clusters()
    Y = project(X, "pca")
    assert Y.shape == (80, 2)
    pc1 = Y[:, 0]
    assert pc1[labels == 0].max() < pc1[labels == 1].min() or pc1[labels == 1].max() < pc1[labels == 0].min()
    np.testing.assert_array_equal(Y, project(X, "pca", seed=7))
    # same scores as an SVD, up to sign
    Xc = X - X.mean(0)
    U, S, _ = np.linalg.svd(Xc, full_matrices=False)
    np.testing.assert_allclose(np.abs(pca(X, 3)), np.abs(U[:, :3] * S[:3]), atol=1e-8)
    assert pca(X[:, :1], 2).shape == (80, 2)  # fewer dims than asked: zero-padded


def test_tsne_is_deterministic_for_a_seed_and_returns_n_by_2():
    X, labels = two_clusters(n_each=50, d=80)
    Y1 = project(X, "tsne", seed=3)
    Y2 = project(X, "tsne", seed=3)
    assert Y1.shape == (100, 2) and np.isfinite(Y1).all()
    np.testing.assert_array_equal(Y1, Y2)
    # the two planted clusters stay apart: each point's nearest neighbour is from its own cluster
    D = np.linalg.norm(Y1[:, None] - Y1[None], axis=-1)
    np.fill_diagonal(D, np.inf)
    assert (labels[D.argmin(1)] == labels).mean() > 0.95


@pytest.mark.parametrize("implementation", ["opentsne", "sklearn"])
def test_both_tsne_implementations_keep_planted_clusters_and_neighbourhoods(implementation):
    """Faithful whichever library runs: planted clusters stay apart and 10-neighbourhoods are kept
    (trustworthiness, scikit-learn's independent measure)."""
    pytest.importorskip("openTSNE")
    from sklearn.manifold import trustworthiness

    from dtviz.analysis.projection import tsne

    X, labels = two_clusters(n_each=50, d=20)
    Y = tsne(X, 0, implementation)
    D = np.linalg.norm(Y[:, None] - Y[None], axis=-1)
    np.fill_diagonal(D, np.inf)
    assert (labels[D.argmin(1)] == labels).mean() > 0.95
    assert trustworthiness(X, Y, n_neighbors=10) > 0.85
    np.testing.assert_array_equal(Y, tsne(X, 0, implementation))


@pytest.mark.parametrize("method", ["tsne", "pca"])
def test_a_one_dim_panel_projects_and_keeps_its_clusters(method):
    """A panel of one dim (SD3's tail at τ = 0.01 can be a single dim): two clusters on a line stay apart."""
    rng = np.random.default_rng(4)
    x = np.concatenate([rng.normal(0, 0.1, 40), rng.normal(5, 0.1, 40)])[:, None]
    labels = np.repeat([0, 1], 40)
    Y = project(x, method)
    assert Y.shape == (80, 2) and np.isfinite(Y).all()
    D = np.linalg.norm(Y[:, None] - Y[None], axis=-1)
    np.fill_diagonal(D, np.inf)
    assert (labels[D.argmin(1)] == labels).all()


def test_opentsne_reports_iterations_and_never_compiles_numba():
    """The page shows t-SNE's iterations; and openTSNE's own neighbour choice would import pynndescent
    (30 s of numba compilation on a busy machine): a fresh interpreter must not load numba at all."""
    pytest.importorskip("openTSNE")
    code = (
        "import sys, numpy as np\n"
        "from dtviz.analysis.projection import project, TSNE_ITERATIONS\n"
        "seen = []\n"
        "Y = project(np.random.default_rng(0).normal(size=(60, 8)), 'tsne', progress=lambda d, t: seen.append((d, t)))\n"
        "assert Y.shape == (60, 2) and seen[-1] == (TSNE_ITERATIONS, TSNE_ITERATIONS), seen[-3:]\n"
        "assert [d for d, _ in seen] == sorted(d for d, _ in seen) and len(seen) == TSNE_ITERATIONS // 25\n"
        "print(sorted(m for m in ('numba', 'pynndescent', 'umap') if m in sys.modules))\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=root)
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300, cwd=root)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


def test_panel_titles_letter_the_panels_as_the_paper():
    from dtviz.analysis.projection import PANEL_FULL, PANEL_HEAD, PANEL_NO_TOP, PANEL_TAIL, panel_titles

    t = panel_titles(128, 12, 5)
    assert list(t) == [PANEL_FULL, PANEL_HEAD, PANEL_TAIL, PANEL_NO_TOP]
    assert [v[:3] for v in t.values()] == ["(a)", "(b)", "(c)", "(d)"]
    assert "128 dims" in t[PANEL_FULL] and "12 dims" in t[PANEL_HEAD] and "116 dims" in t[PANEL_TAIL]
    assert "top 5 head dims: 123 dims" in t[PANEL_NO_TOP]


def test_project_rejects_bad_input_and_reports_missing_umap(monkeypatch):
    with pytest.raises(DtvizInputError, match="method"):
        project(np.zeros((5, 3)), "mds")
    with pytest.raises(DtvizInputError, match="NaN"):
        project(np.full((5, 3), np.nan), "pca")
    with pytest.raises(DtvizInputError, match="at least 4"):
        project(np.ones((3, 3)), "tsne")
    monkeypatch.setitem(sys.modules, "umap", None)  # as if umap-learn were not installed
    with pytest.raises(DtvizInputError, match="umap-learn"):
        project(np.random.default_rng(0).normal(size=(20, 5)), "umap")


# ============================================================================================ cache

def test_projection_cache_is_a_bounded_lru():
    cache = ProjectionCache(maxsize=2)
    k1, k2, k3 = (ProjectionCache.key("builtin", 0.0, "y+t", 0.01, "tsne", p) for p in ("full c", "head only", "tail only"))
    cache.put(k1, np.zeros(1))
    cache.put(k2, np.ones(1))
    assert cache.get(k1) is not None  # k1 is now the most recent
    cache.put(k3, np.full(1, 2.0))
    assert k2 not in cache and k1 in cache and k3 in cache and len(cache) == 2
    assert ProjectionCache.key("m", 0.1 + 0.2, "y", 0.3, "TSNE", "p") == ProjectionCache.key("m", 0.3, "y", 0.3, "tsne", "p")


def test_projection_cache_computes_each_key_once_under_concurrency():
    cache = ProjectionCache(maxsize=4)
    calls = []

    def compute():
        calls.append(1)
        time.sleep(0.05)
        return np.arange(3)

    key = ProjectionCache.key("m", None, "y+t", 0.01, "pca", "full c")
    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.get_or_compute(key, compute))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(results) == 8
    assert all(r is results[0] for r in results)


# ======================================================================================= neighbours

def test_nearest_on_a_known_matrix_full_space_and_subspace():
    E = np.array([[1.0, 0.0, 0.0],
                  [0.9, 0.1, 0.0],   # close to 0 in the full space
                  [0.0, 1.0, 0.0],
                  [0.7, 0.0, 0.7],   # close to 0 in dims {0}, far in the full space
                  [0.0, 0.0, 0.0]])  # a zero vector: cosine 0
    ids, cos = nearest(E, 0, k=3)
    assert ids.tolist() == [1, 3, 2]
    np.testing.assert_allclose(cos, [0.9 / np.hypot(0.9, 0.1), 0.7 / np.hypot(0.7, 0.7), 0.0])
    ids_sub, cos_sub = nearest(E, 0, k=2, dims=[0])
    assert ids_sub.tolist() == [1, 3] and np.allclose(cos_sub, 1.0)  # tie broken by id
    assert 0 not in nearest(E, 0, k=10)[0] and len(nearest(E, 0, k=10)[0]) == 4
    with pytest.raises(DtvizInputError):
        nearest(E, 9)
    with pytest.raises(DtvizInputError, match="empty"):
        nearest(E, 0, dims=[])


# ========================================================================================= dynamics

def test_stats_over_t_on_the_builtin_model():
    src = dtviz.load("builtin")
    ts = src.family.convention.grid(4)
    out = dynamics.stats_over_t(src, ts)
    assert out["t"].tolist() == ts
    for key in ("cosine_mean", "npr_mean_vector", "npr_per_class_mean"):
        assert out[key].shape == (4,) and np.isfinite(out[key]).all()
    assert ((out["npr_mean_vector"] > 0) & (out["npr_mean_vector"] <= 1)).all()
    with pytest.raises(DtvizInputError):
        dynamics.stats_over_t(src, [src.family.convention.t_max + 5])


def save_embedder_snapshot(path, seed, step=None):
    """Only the y/t embedder weights, as dtviz's training writes them (builtin/train.py save_snapshot)."""
    model = randomized_dit(tiny_config(num_classes=6, hidden=32), seed=seed)
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()
             if k.startswith(("t_embedder.", "y_embedder."))}
    save_file(state, str(path), metadata={"step": str(step)} if step is not None else None)
    return state


def test_snapshot_series_reads_steps_and_computes_each_snapshot(tmp_path):
    late = save_embedder_snapshot(tmp_path / "ema_late.safetensors", seed=1, step=500)  # step from metadata
    save_embedder_snapshot(tmp_path / "step_000250.safetensors", seed=2)  # step from the file name
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    out = dynamics.snapshot_series(tmp_path, family="dit")
    assert out["step"].tolist() == [250, 500]
    assert [os.path.basename(p) for p in out["path"]] == ["step_000250.safetensors", "ema_late.safetensors"]
    assert np.isfinite(out["cosine_mean"]).all() and ((out["npr_mean_vector"] > 0) & (out["npr_mean_vector"] <= 1)).all()
    assert out["cosine_mean"][0] != out["cosine_mean"][1]
    # the numbers are those of the snapshot's own vectors at t0 (DiT: t = 999)
    src = dtviz.load(str(tmp_path / "ema_late.safetensors"), family="dit")
    assert late["y_embedder.embedding_table.weight"].shape[0] == 7  # 6 classes + the null row
    row = dtviz.analysis.stats.ConditionStats().fit(src.embeddings()).table_row()
    assert out["cosine_mean"][1] == pytest.approx(row["cosine"]["mean"])
    assert out["npr_mean_vector"][1] == pytest.approx(row["npr"]["mean_vector"])
    # where c's size sits, in float64 from the snapshot's tensors: the 6 label rows (not the null row) and DiT's
    # t_embedder MLP on its sinusoidal features at t0 = 999
    w = {k: v.double().numpy() for k, v in late.items()}
    Y = w["y_embedder.embedding_table.weight"][:6]
    half = w["t_embedder.mlp.0.weight"].shape[1] // 2
    args = src.t0 * np.exp(-np.log(10000) * np.arange(half) / half)
    h = np.concatenate([np.cos(args), np.sin(args)]) @ w["t_embedder.mlp.0.weight"].T + w["t_embedder.mlp.0.bias"]
    t_emb = (h / (1 + np.exp(-h))) @ w["t_embedder.mlp.2.weight"].T + w["t_embedder.mlp.2.bias"]
    y_bar = Y.mean(0)
    assert src.t0 == 999
    assert out["y_shared_sq"][1] == pytest.approx(y_bar @ y_bar, rel=1e-5)
    assert out["y_own_sq"][1] == pytest.approx(np.mean([(y - y_bar) @ (y - y_bar) for y in Y]), rel=1e-5)
    assert out["t_sq"][1] == pytest.approx(t_emb @ t_emb, rel=1e-5)


def test_a_matrix_has_no_size_split(tmp_path):
    path = tmp_path / "E.npy"
    np.save(path, np.ones((4, 3), np.float32))
    split = dynamics.size_split(dtviz.load(str(path)))
    assert set(split) == set(dynamics.SPLIT_KEYS) and all(np.isnan(v) for v in split.values())


def test_snapshot_series_errors_are_clear(tmp_path):
    with pytest.raises(DtvizInputError, match="no checkpoint files"):
        dynamics.snapshot_series(tmp_path)
    save_embedder_snapshot(tmp_path / "final.safetensors", seed=0)
    with pytest.raises(DtvizInputError, match="training step"):
        dynamics.snapshot_series(tmp_path)


def test_builtin_snapshots_give_a_training_series():
    folder = os.path.join(dtviz.sources.loading.BUILTIN_DIR, "snapshots")
    out = dynamics.snapshot_series(folder)
    assert len(out["step"]) >= 2 and list(out["step"]) == sorted(out["step"])
    assert np.isfinite(out["npr_mean_vector"]).all()
