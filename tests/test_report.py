"""The report's calibration lines: where cont-pmap lands between random features and the label-trained ones."""

from cytolake.eval.compare import ModelResult
from cytolake.eval.report import calibration


def result(feature_model: str, linear: float, gnn_plus: float) -> ModelResult:
    r = ModelResult(f"{feature_model}-v1", graphs=None, feature_model=feature_model)
    for m, v in (("pmap-argmax", 0.70), ("linear", linear), ("gnn", linear), ("gnn+", gnn_plus)):
        r.seed_scores[m] = [{"test_macro_f1": v, "transfer_macro_f1": v}]
    return r


def test_a_share_of_the_way_only_where_the_labelled_model_beats_random_init():
    lines = calibration([result("sup", 0.10, 0.65), result("cont-sup", 0.08, 0.66),
                         result("cont-pmap", 0.07, 0.60), result("random-init", 0.05, 0.70)])
    linear = next(line for line in lines if line.strip().startswith("- linear, test"))
    # (0.07 - 0.05) / (0.10 - 0.05) and / (0.08 - 0.05)
    assert "40% of the way from random-init (0.050) to sup (0.100)" in linear and "67% of the way" in linear
    gnn_plus = next(line for line in lines if line.strip().startswith("- gnn+, test"))
    # sup and cont-sup are below random-init here: no share (it would read 200%), the plain difference instead
    assert "of the way" not in gnn_plus
    assert "-0.050 against sup (0.650), which is not above random-init (0.700)" in gnn_plus
    assert "-0.060 against cont-sup (0.660)" in gnn_plus
