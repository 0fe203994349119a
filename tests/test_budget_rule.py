"""The training-budget rule (scripts/training_budget.py) and the defaults it sets: the signed
doubling test per series, the largest settled budget per method-form over the concepts, and
DEFAULT_STEPS checked against the committed study results."""

import importlib.util
from pathlib import Path

import pytest
from typer.testing import CliRunner

from steer_pu.cli.main import app
from steer_pu.methods import get_method
from steer_pu.methods.trained import DEFAULT_STEPS, PLUGIN_STEPS, PROVISIONAL_STEPS, TrainedMethod

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "docs" / "results" / "training_budget"


@pytest.fixture(scope="module")
def study():
    spec = importlib.util.spec_from_file_location("training_budget", ROOT / "scripts" / "training_budget.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def gains(fa: dict[int, float]) -> dict[tuple[int, int], float]:
    """FA(T) − FA(S) for T = 2S and 4S of one seed's series."""
    return {(s, t): fa[t] - fa[s] for s in fa for t in (2 * s, 4 * s) if t in fa}


def test_enough_steps_is_signed_and_uses_the_larger_threshold(study):
    # rises by 0.05 then 0.005: 200 is the first budget whose doubling gains < 0.01
    assert study.enough_steps(gains({100: 0.70, 200: 0.75, 400: 0.755})) == 200
    # a fall settles: more steps do not help (SFT LoRA 400 -> 800 on risk_seeking)
    assert study.enough_steps(gains({400: 0.803, 800: 0.750})) == 400
    # a gain inside the paired-bootstrap half-width does not count as a gain
    assert study.enough_steps(gains({100: 0.70, 200: 0.74}), {(100, 200): 0.05}) == 100
    assert study.enough_steps(gains({100: 0.70, 200: 0.74}), {(100, 200): 0.03}) is None
    # no doubling measured: nothing settles
    assert study.enough_steps(gains({100: 0.70, 300: 0.70})) is None


def test_enough_steps_also_checks_four_times_the_budget(study):
    """Two rises each inside its noise, but the 4x point clearly above: not settled at 1x."""
    fa = gains({100: 0.756, 200: 0.804, 400: 0.845})
    widths = {(100, 200): 0.069, (200, 400): 0.058, (100, 400): 0.074}
    assert study.enough_steps(fa, widths) == 200
    assert study.enough_steps(fa, {**widths, (100, 400): 0.1}) == 100


def test_gains_pair_the_seeds_both_budgets_have(study):
    """A budget with an extra seed is compared on the shared seeds only, not on mixed seed means."""

    def unit(fa):
        return {"fa": fa, "loss_last_epoch": 1.0}

    by_steps = {100: {0: unit(0.81), 1: unit(0.83)}, 200: {0: unit(0.85), 1: unit(0.80)}, 400: {0: unit(0.84)}}
    summary = study.summarise(by_steps)
    assert summary["gains"][(100, 200)] == pytest.approx(((0.85 - 0.81) + (0.80 - 0.83)) / 2)
    assert summary["gains"][(100, 400)] == pytest.approx(0.84 - 0.81)  # seed 0 only
    assert summary["means"][200] == pytest.approx(0.825) and summary["seeds"] == [0, 1]


def test_method_form_budgets_take_the_largest_over_concepts(study):
    settled = {
        ("risk", "sft", "lora", "bfloat16"): {"enough": 400, "reach": 800, "seeds": [0, 1, 2]},
        ("risk", "sft", "lora", "float32"): {
            "enough": None,
            "reach": 200,
            "seeds": [0],
        },  # superseded by the longer bf16 series
        ("opt", "sft", "lora", "bfloat16"): {"enough": 100, "reach": 400, "seeds": [0, 1]},
        ("risk", "split", "lora", "float32"): {"enough": 50, "reach": 200, "seeds": [0]},
        ("opt", "split", "lora", "bfloat16"): {"enough": 100, "reach": 400, "seeds": [0]},
        ("risk", "sft", "vector", "float32"): {"enough": 25, "reach": 100, "seeds": [0]},
        ("risk", "reps", "local_weight", "bfloat16"): {"enough": None, "reach": 100, "seeds": [0]},
    }
    out = study.method_form_budgets(settled)
    assert out[("sft", "lora")] == (400, "opt 100, risk 400")
    assert out[("split", "lora")] == (100, "opt 100, risk 50")
    # measured on one concept only: not settled
    assert out[("sft", "vector")] == (None, "not settled: opt not measured")
    assert out[("reps", "local_weight")] == (None, "not settled: opt not measured, risk measured to 100")


def test_load_series_leaves_out_ablation_units(study, tmp_path):
    unit = {"concept": "c", "method": "split", "form": "vector", "steps": 25, "fa": 0.7, "loss_last_epoch": 1.0}
    path = tmp_path / "units.json"
    path.write_text(__import__("json").dumps({"a": unit, "b": {**unit, "steps": 50, "hp": {"add_sub": False}}}))
    assert list(study.load_series([str(path)])[("c", "split", "vector", "float32")]) == [25]


def test_defaults_are_what_the_committed_study_settles(study):
    """DEFAULT_STEPS says what the committed results settle on, and calls the rest provisional."""
    # the budget curves; ablations-*.json holds one-budget switch tests on a third concept
    files = sorted(str(p) for p in STUDY.glob("*.json") if not p.name.startswith("ablations-"))
    budgets = study.study_budgets(files)
    for method, forms in DEFAULT_STEPS.items():
        for form, steps in forms.items():
            settled, why = budgets[(method, form)]
            if (method, form) in PROVISIONAL_STEPS:
                assert settled is None, f"{method} {form} is settled by the study ({why}): not provisional"
            else:
                assert settled == steps, f"{method} {form}: DEFAULT_STEPS {steps}, the study settles on {settled}"


def test_builtins_and_plugins_take_their_budgets():
    for method, forms in DEFAULT_STEPS.items():
        for form, steps in forms.items():
            assert get_method(method)(form).hyperparams["steps"] == steps

    class Mine(get_method("sft")):
        name = "mine"

    assert issubclass(Mine, TrainedMethod)
    assert {form: Mine(form).hyperparams["steps"] for form in Mine.forms} == PLUGIN_STEPS
    assert PLUGIN_STEPS["lora"] == max(forms["lora"] for forms in DEFAULT_STEPS.values())


def test_methods_list_marks_provisional_budgets():
    out = " ".join(CliRunner().invoke(app, ["methods", "list"], env={"COLUMNS": "400"}).output.split())
    for method, form in PROVISIONAL_STEPS:
        steps = DEFAULT_STEPS[method][form]
        assert f"{method} │ {form} │ {steps} steps × 4 pairs (provisional)" in out
    assert "split │ lora │ 100 steps × 4 pairs │" in out
