"""Analysis: the paper's statistics of c and what they imply, computed on arrays and sources.

``stats`` (cosine, PR / nPR, s_tail, variance; float64 where it matters), ``dynamics`` (over t and over
training), ``projection`` / ``tsne`` (Fig. 13), ``neighbours``, ``classsearch``, ``blocks`` (the change a
pruning makes to every adaLN block's modulation) and ``claims`` (the paper's claims, each measured with a
verdict). Definitions: PR(v) = (Σ|v_i|)² / Σ v_i², nPR = PR / d (absolute values); s_tail(τ) = #{i : |c_i| < τ} / d.

Imports: dtviz.errors, dtviz.reference, dtviz.models, dtviz.sources, dtviz.pruning and this wing
(dtviz.pruning and this wing form one layer: no module cycle between them). ``claims`` alone may sample:
it imports dtviz.sampling and dtviz.evaluation inside the functions that run its sampling rows.
"""
