"""What the model card's recipe texts say is what their curves show (assets/builtin/trials.json).

Each recipe's prose is written by hand after its curve is measured (scripts/trial_curve.py), so these tests pin it:
every measured number it quotes is a value on a curve, and each comparison it makes between recipes holds on the
curves it names. A re-measured curve that no longer supports its sentence fails here."""
from __future__ import annotations

import json
import os
import re

import pytest

from dtviz.sources.loading import BUILTIN_DIR

WIDTH_512 = "IJKLMNOPQRSTUVW"  # the width-512, 100-class recipes (I and what varies one setting of it)


@pytest.fixture(scope="module")
def trials() -> dict:
    with open(os.path.join(BUILTIN_DIR, "trials.json"), encoding="utf-8") as fh:
        return json.load(fh)


@pytest.fixture(scope="module")
def curves(trials) -> dict:
    """{letter: {step: row}}"""
    return {r["name"].split(":")[0]: {row["step"]: row for row in r["curve"]} for r in trials["recipes"]}


def prose(trials, letter: str) -> str:
    return next(r["recipe"] for r in trials["recipes"] if r["name"].split(":")[0] == letter)


def quoted_measurements(text: str) -> list[tuple[float, float]]:
    """(value, half a unit of its last digit) for each number the text quotes to a precision a goal is not written
    in: percentages with a decimal point (84.2 %) and fractions with three or more decimals (0.9017). Commands in
    backticks are left out."""
    text = re.sub(r"`[^`]*`", "", text)
    out = [(float(m) / 100, 0.5 * 10 ** -(len(m.split(".")[1]) + 2)) for m in re.findall(r"(?<![\w.])(\d+\.\d+) ?%", text)]
    out += [(float(m), 0.5 * 10 ** -len(m.split(".")[1])) for m in re.findall(r"(?<![\w.])(0\.\d{3,})(?! ?%)", text)]
    return out


def test_quoted_measurements_known_answers():
    assert quoted_measurements("cosine 0.9017 and 84.2 % (goal 0.90, 80 %) `--lr 0.0001`") == [
        (pytest.approx(0.842), pytest.approx(0.0005)), (0.9017, pytest.approx(0.00005))]


def named_recipes(text: str, letters) -> set[str]:
    """The recipes a text names: "D:", "D's", "(as D)", "recipe D" (not the article "A")."""
    text = re.sub(r"`[^`]*`", "", text)
    return {L for L in letters if L != "A" and re.search(rf"(?<![\w-]){L}(?::|'s\b|\)|,| and\b| to\b)|recipes? {L}\b", text)}


def test_every_number_a_recipe_quotes_is_on_its_curve_or_on_one_it_names(trials, curves):
    """... or in the last_state (where adaLN reads the class) of one of those recipes."""
    for r in trials["recipes"]:
        letter = r["name"].split(":")[0]
        sources = {letter} | named_recipes(r["recipe"], curves)
        values = [v for L in sources for row in curves[L].values() for v in row.values() if isinstance(v, float)]
        values += [v for x in trials["recipes"] if x["name"].split(":")[0] in sources
                   for v in (x.get("last_state") or {}).values() if isinstance(v, float)]
        for x, half in quoted_measurements(r["recipe"]):
            assert any(abs(v - x) <= half + 1e-9 for v in values), f"{letter} quotes {x}; the curves of {sorted(sources)} do not"


def test_recipe_r_s_comparisons_with_i_hold(curves):
    I, R = curves["I"], curves["R"]
    last = max(R)
    # "the rows' own parts stop growing at about a quarter of I's"
    assert 0.2 <= R[last]["y_own_sq"] / I[last]["y_own_sq"] <= 0.33
    assert R[last]["y_own_sq"] <= 1.05 * max(row["y_own_sq"] for s, row in R.items() if s >= last - 1000)
    # "the cosine over t dips far less than I's", "the class accuracy keeps up with I's"
    assert R[last]["cosine_min_t"] - I[last]["cosine_min_t"] >= 0.1
    assert all(R[s]["class_accuracy"] >= I[s]["class_accuracy"] - 0.02 for s in R if R[s].get("class_accuracy") is not None)
    # "the top-20 variance and head-structure columns fall further than I's, nPR(c̄) follows I's"
    assert R[last]["top20_variance_share"] < I[last]["top20_variance_share"]
    assert R[last]["head_structure"] < I[last]["head_structure"]
    assert all(abs(R[s]["npr"] - I[s]["npr"]) <= 0.01 for s in R)


def test_recipe_s_comparisons_hold(curves):
    I, S = curves["I"], curves["S"]
    # "from step 1250 on, the label rows' own parts stay below a tenth of I's"
    assert all(S[s]["y_own_sq"] < I[s]["y_own_sq"] / 10 for s in S if s >= 1250)
    # "and t_emb stops growing"
    assert S[max(S)]["t_sq"] <= 1.02 * S[2000]["t_sq"] and I[max(I)]["t_sq"] > 1.4 * I[2000]["t_sq"]
    # "from step 500 on, the y+t cosine and its lowest value over t are the highest of the width-512 recipes at each
    # step, and the lowest value over t stays above the 0.85 goal"
    for s in (s for s in S if s >= 500):
        for key in ("cosine", "cosine_min_t"):
            others = [curves[L][s][key] for L in WIDTH_512 if L != "S" and s in curves[L]]
            assert S[s][key] > max(others), (s, key)
        assert S[s]["cosine_min_t"] > 0.85
    # "class accuracy 71.0 % at step 2000 against I's 94.0 %, within 3 points of I's from step 3000 on"
    assert (S[2000]["class_accuracy"], I[2000]["class_accuracy"]) == (pytest.approx(0.71), pytest.approx(0.94))
    assert all(abs(S[s]["class_accuracy"] - I[s]["class_accuracy"]) <= 0.03 for s in S if s >= 3000)
    # "the top-20 variance share is the lowest of the width-512 recipes at each step from step 250 on"
    for s in (s for s in S if s >= 250):
        others = [curves[L][s]["top20_variance_share"] for L in WIDTH_512 if L != "S" and s in curves[L]]
        assert S[s]["top20_variance_share"] < min(others), s
    # "nPR(c̄) falls more slowly than I's (through SiLU it follows I's step for step)"
    assert all(S[s]["npr"] >= I[s]["npr"] for s in S if s >= 1000)
    assert all(abs(S[s]["npr_silu"] - I[s]["npr_silu"]) <= 0.015 for s in S)
    # "the top dims of c̄ turn negative as in I"
    assert S[max(S)]["head_negative"] >= 6 and I[max(I)]["head_negative"] >= 6


def test_the_obstacle_s_third_reading_holds_in_every_recipe_s_last_state(trials):
    """"in the last kept state of every recipe, the 20 dims where the class varies most in c put more of the class
    signal into the modulations than the top-20 |c̄ᵢ| dims do, and, in every recipe but S, adaLN's weight on a dim
    rises with the class variance there (Spearman ρ above 0.25)"."""
    states = {r["name"].split(":")[0]: r["last_state"] for r in trials["recipes"] if r.get("last_state")}
    assert len(states) >= 10 and "every recipe, the 20 dims where the class varies most" in trials["obstacle"]
    assert all(s["between_top_share"] > s["head_share"] for s in states.values())
    assert all(s["rho_between_weight"] > 0.25 for name, s in states.items() if name != "S")
    assert abs(states["S"]["rho_between_weight"]) < 0.05


def test_recipe_u_comparisons_with_i_hold(curves, trials):
    I, U = curves["I"], curves["U"]
    last = max(U)
    # "‖t_emb(t0)‖² more than three times I's by step 1250", "nPR(c̄) below I's from step 750 on"
    assert last == 1250 and U[last]["t_sq"] > 3 * I[last]["t_sq"]
    assert all(U[s]["npr"] < I[s]["npr"] for s in U if s >= 750)
    # "all of the top-8 |c̄ᵢ| are negative by then"
    assert U[last]["head_negative"] == 8
    # the obstacle: "(T, U) ... keeps the cosine over t above I's"
    assert all(U[s]["cosine_min_t"] > I[s]["cosine_min_t"] for s in U if s >= 500)
    # "the head-structure and top-20 variance columns stay within 0.05 of I's at every snapshot"
    for s in (s for s in U if U[s].get("head_structure") is not None):
        assert abs(U[s]["head_structure"] - I[s]["head_structure"]) <= 0.05, s
        assert abs(U[s]["top20_variance_share"] - I[s]["top20_variance_share"]) <= 0.05, s
    # "in its last kept state the 20 dims where the class varies most put far more of the class signal into the
    # modulations than the top-20 |c̄ᵢ| dims"
    state = next(r["last_state"] for r in trials["recipes"] if r["name"].startswith("U:"))
    assert state["step"] == last and state["between_top_share"] > 3 * state["head_share"]


def test_recipe_t_comparisons_with_i_hold(curves, trials):
    I, T = curves["I"], curves["T"]
    last = max(T)
    assert last == 3500
    # "‖t_emb(t0)‖² more than twice I's from step 1750 on"
    assert all(T[s]["t_sq"] > 2 * I[s]["t_sq"] for s in T if s >= 1750)
    # "the y+t cosine and its lowest value over t stay above I's from step 750 on, though the lowest value over t
    # still falls to 0.708"
    for s in (s for s in T if s >= 750):
        assert T[s]["cosine"] > I[s]["cosine"] and T[s]["cosine_min_t"] > I[s]["cosine_min_t"], s
    assert T[last]["cosine_min_t"] == pytest.approx(0.708, abs=5e-4)
    # "nPR of SiLU(c̄) stays below I's from step 1000 on and ends at 15.3 %, the lowest of any recipe"
    assert all(T[s]["npr_silu"] < I[s]["npr_silu"] for s in T if s >= 1000)
    lowest = min(row["npr_silu"] for c in curves.values() for row in c.values() if row.get("npr_silu") is not None)
    assert T[last]["npr_silu"] == lowest
    # "the head-structure and top-20 variance columns stay within 0.05 of I's at every snapshot"
    for s in (s for s in T if T[s].get("head_structure") is not None):
        assert abs(T[s]["head_structure"] - I[s]["head_structure"]) <= 0.05, s
        assert abs(T[s]["top20_variance_share"] - I[s]["top20_variance_share"]) <= 0.05, s
    # "all of the top-8 |c̄ᵢ| are negative from step 1750 on"
    assert all(T[s]["head_negative"] == 8 for s in T if s >= 1750)
    # "in its last kept state the 20 dims where the class varies most still put far more of the class signal into the
    # modulations than the top-20 |c̄ᵢ| dims"
    state = next(r["last_state"] for r in trials["recipes"] if r["name"].startswith("T:"))
    assert state["step"] == last and state["between_top_share"] > 3 * state["head_share"]


def test_recipe_v_and_w_comparisons_hold(curves, trials):
    I, T, V, W = curves["I"], curves["T"], curves["V"], curves["W"]
    state = {L: next(r["last_state"] for r in trials["recipes"] if r["name"].startswith(L + ":")) for L in "IVW"}
    assert max(V) == max(W) == 3000 == state["V"]["step"] == state["W"]["step"]
    # V: "the top-20 variance column stays between 0.27 and 0.31 from step 1000 on, while I's falls to 0.155 by 3000"
    assert all(0.27 <= V[s]["top20_variance_share"] <= 0.31 for s in V if s >= 1000)
    assert I[3000]["top20_variance_share"] == pytest.approx(0.155, abs=5e-4)
    # V: "the lowest cosine over t stays above I's from step 500 on"
    assert all(V[s]["cosine_min_t"] > I[s]["cosine_min_t"] for s in V if s >= 500)
    # V: "the head-structure column stays within 0.05 of I's from step 1000 on", "5 or 6 of the top-8 negative from 1000 on"
    assert all(abs(V[s]["head_structure"] - I[s]["head_structure"]) <= 0.05 for s in V if s >= 1000)
    assert all(V[s]["head_negative"] in (5, 6) for s in V if s >= 1000)
    # V: "nPR(c̄) above I's from step 750 on", "the lowest cosine over t below the 0.85 goal from step 2000 on"
    assert all(V[s]["npr"] > I[s]["npr"] for s in V if s >= 750)
    assert all((V[s]["cosine_min_t"] < 0.85) == (s >= 2000) for s in V)
    # W: "above I's and T's from step 500 on and above the 0.85 goal through step 2500 (...; 0.843 at step 3000)"
    for s in (s for s in W if s >= 500):
        assert W[s]["cosine_min_t"] > max(I[s]["cosine_min_t"], T[s]["cosine_min_t"]), s
        assert (W[s]["cosine_min_t"] > 0.85) == (s <= 2500), s
    # W: "between 0.28 and 0.31 from step 1000 on — with V's, the highest of any recipe at step 2000"
    assert all(0.28 <= W[s]["top20_variance_share"] <= 0.31 for s in W if s >= 1000)
    at_2000 = {L: c[2000]["top20_variance_share"] for L, c in curves.items() if c.get(2000, {}).get("top20_variance_share")}
    assert sorted(at_2000, key=at_2000.get)[-2:] == ["V", "W"]
    # the obstacle: "where every other recipe's is below 0.22 by step 2000"
    assert max(v for L, v in at_2000.items() if L not in "VW") < 0.22
    assert "near 0.3 where every other recipe's is below 0.22 by step 2000" in trials["obstacle"]
    # W: "within 0.03 of I's from step 1250 on", "6 or 7 of the top-8 negative from step 1250 on", "denser than I's and T's"
    assert all(abs(W[s]["head_structure"] - I[s]["head_structure"]) <= 0.03 for s in W if s >= 1250)
    assert all(W[s]["head_negative"] in (6, 7) for s in W if s >= 1250)
    assert W[3000]["npr"] > T[3000]["npr"] > I[3000]["npr"]
    # both: the class's dims put far more of its signal into the modulations than the head does, more than in I
    for L in "VW":
        assert state[L]["between_top_share"] > 5 * state[L]["head_share"]
        assert state[L]["between_top_share"] > state["I"]["between_top_share"] + 0.1
    # both: "class accuracy is 88.0 % / 81.5 % at step 2000 (I: 94.0 %) and 98.5 % at step 3000 (I: 98.0 %)"
    assert (V[2000]["class_accuracy"], W[2000]["class_accuracy"]) == (pytest.approx(0.88), pytest.approx(0.815))
    assert V[3000]["class_accuracy"] == W[3000]["class_accuracy"] == pytest.approx(0.985) and I[3000]["class_accuracy"] == pytest.approx(0.98)
