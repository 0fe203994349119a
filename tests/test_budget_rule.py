"""The training-budget rule (scripts/training_budget.py) that sets DEFAULT_STEPS: signed doubling
test per series, then the largest settled budget per form over methods and concepts."""

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "training_budget.py"


@pytest.fixture(scope="module")
def study():
    spec = importlib.util.spec_from_file_location("training_budget", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_enough_steps_is_signed_and_uses_the_larger_threshold(study):
    # rises by 0.05 then 0.005: 200 is the first budget whose doubling gains < 0.01
    assert study.enough_steps({100: 0.70, 200: 0.75, 400: 0.755}) == 200
    # a fall settles: more steps do not help (SFT LoRA 400 -> 800 on risk_seeking)
    assert study.enough_steps({400: 0.803, 800: 0.750}) == 400
    # a gain inside the paired-bootstrap half-width does not count as a gain
    assert study.enough_steps({100: 0.70, 200: 0.74}, {100: 0.05}) == 100
    assert study.enough_steps({100: 0.70, 200: 0.74}, {100: 0.03}) is None
    # no doubling measured: nothing settles
    assert study.enough_steps({100: 0.70, 300: 0.70}) is None


def test_form_budgets_take_the_largest_and_prefer_the_longer_series(study):
    settled = {
        ("risk", "sft", "lora", "bfloat16"): (400, 800, 3),
        ("risk", "sft", "lora", "float32"): (None, 200, 1),  # superseded by the longer bf16 series
        ("risk", "split", "lora", "float32"): (50, 200, 1),
        ("opt", "sft", "lora", "bfloat16"): (100, 400, 2),
        ("opt", "split", "lora", "bfloat16"): (200, 400, 1),
        ("risk", "sft", "vector", "float32"): (25, 100, 1),
        ("risk", "reps", "local_weight", "bfloat16"): (None, 100, 1),
        ("risk", "sft", "local_weight", "bfloat16"): (100, 400, 1),
    }
    out = study.form_budgets(settled)
    assert out["lora"] == "400 steps (set by sft on risk; 4 method-concept series)"
    # a method-form measured on one concept only does not settle its form
    assert out["vector"] == "not settled: sft on opt (not measured)"
    assert out["local_weight"] == (
        "not settled: reps on risk (measured to 100), reps on opt (not measured), sft on opt (not measured)"
    )
