"""`steer-pu bench` machinery on a tiny model: the engine and the plain loop agree, figures are consistent."""

import pytest

from steer_pu.models import load_model
from steer_pu.perf.bench import bench, matmul_peak_gflops
from steer_pu.suite.concepts import load_concepts


def test_engine_and_plain_agree_and_figures_add_up(tiny_model_dir, tiny_suite):
    loaded = load_model(str(tiny_model_dir))
    figures = bench(
        loaded, load_concepts(tiny_suite), n_pairs=3, token_budget=256, with_lm_eval=False, log=lambda _: None
    )
    engine, plain = figures["ways"]
    assert engine["way"] == "steer-pu engine" and plain["way"] == "plain loop"
    assert plain["d_pref"] < 1e-4 and plain["d_util"] < 1e-4
    assert figures["pair_scores"] == 2 * 3 * len(figures["strengths"])  # two concepts, three pairs each
    assert engine["pairs_per_s"] * engine["seconds"] == figures["pair_scores"]
    assert figures["engine_flops"] > 0 and figures["matmul_peak_gflops"] > 0
    assert engine["flops"] == figures["engine_flops"] and engine["flops_of_engine"] == 1
    assert plain["flops_of_engine"] > 1  # prompts encoded twice, logits at every position, every block per strength
    assert plain["gflops"] * plain["seconds"] == pytest.approx(plain["flops"] / 1e9)


def test_matmul_peak_is_measured():
    assert matmul_peak_gflops(size=64, seconds=0.05) > 0


def test_bfloat16_ways_pass_their_looser_bound_and_float32_keeps_the_tight_one(tiny_model_dir, tiny_suite):
    from steer_pu.perf.bench import agreement_tolerance

    assert agreement_tolerance("float32") == 1e-4 and agreement_tolerance("unknown") == 1e-4
    loaded = load_model(str(tiny_model_dir), "cpu", "bfloat16")
    figures = bench(
        loaded, load_concepts(tiny_suite), n_pairs=3, token_budget=256, with_lm_eval=False, log=lambda _: None
    )
    worst = max(max(w["d_pref"], w["d_util"]) for w in figures["ways"])
    assert figures["dtype"] == "bfloat16" and worst <= agreement_tolerance("bfloat16")
