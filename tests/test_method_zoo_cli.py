"""Every row of the method table runs through `steer-pu run` on a tiny model; plug-ins and ready artifacts too."""

import json

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from steer_pu.cli.main import app
from steer_pu.errors import SteerPuError
from steer_pu.interventions import LoRAIntervention, VectorIntervention
from steer_pu.io import save_tensors
from steer_pu.runs.artifacts import load_artifact

runner = CliRunner()


def run(model_dir, suite, out, *extra):
    args = [
        "run",
        "--model",
        str(model_dir),
        "--suite",
        str(suite),
        "--layer",
        "1",
        "--threads",
        "1",
        "--concepts",
        "cheer",
        "--out",
        str(out),
        *extra,
    ]
    return runner.invoke(app, args)


@pytest.mark.parametrize(
    "method,form,strengths",
    [
        ("sft", "vector", "-4,4"),
        ("reps", "lora", "-1,1"),
        ("split", "local_weight", "-1,1"),
        ("split", "vector", "-4,4,8"),
    ],
)
def test_trained_methods_run(tiny_model_dir, tiny_suite, tmp_path, method, form, strengths):
    result = run(
        tiny_model_dir,
        tiny_suite,
        tmp_path / "r",
        "--method",
        method,
        "--form",
        form,
        "--strengths",
        strengths,
        "--hp",
        "steps=2",
        "--hp",
        "batch_pairs=3",
    )
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "r" / "results.csv")
    assert set(table.method) == {method} and set(table.form) == {form}
    assert len(table) == len(strengths.split(",")) + 1
    meta = json.loads((tmp_path / "r" / "artifacts" / "cheer" / f"{method}-{form}" / "meta.json").read_text())
    assert meta["hyperparams"]["steps"] == 2 and meta["seed"] == 0 and len(meta["train_loss_per_epoch"]) == 1
    config = json.loads((tmp_path / "r" / "run.json").read_text())["config"]
    assert config["hyperparams"]["batch_pairs"] == 3  # recorded in the results' provenance


def test_prompting_changes_only_the_input(tiny_model_dir, tiny_suite, tmp_path):
    result = run(tiny_model_dir, tiny_suite, tmp_path / "p", "--method", "prompting")
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "p" / "results.csv").set_index("m")
    assert list(table.index) == [-2, -1, 0, 1, 2]
    assert table.loc[1, "pref_logodds"] != table.loc[0, "pref_logodds"]
    prompts = json.loads((tmp_path / "p" / "artifacts" / "cheer" / "prompting-prompt" / "prompts.json").read_text())
    assert "cheerful answers" in prompts["instructions"]["+1"] and "gloomy answers" in prompts["instructions"]["-1"]
    bad = run(tiny_model_dir, tiny_suite, tmp_path / "q", "--method", "prompting", "--strengths", "3")
    assert bad.exit_code == 2 and "no instruction for strength 3" in bad.output


def test_plugin_method_by_module_path(tiny_model_dir, tiny_suite, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(__import__("pathlib").Path(__file__).parents[1] / "examples"))
    result = run(tiny_model_dir, tiny_suite, tmp_path / "u", "--method", "unit_diffmean:UnitDiffMean", "--hp", "norm=2")
    assert result.exit_code == 0, result.output
    art = load_artifact(tmp_path / "u" / "artifacts" / "cheer" / "unit_diffmean:UnitDiffMean-vector")
    assert torch.isclose(art.vector.norm(), torch.tensor(2.0))


def test_ready_artifacts_vector_file_and_peft_dir(tiny_model_dir, tiny_suite, tmp_path):
    from steer_pu.models import load_model

    hidden = load_model(str(tiny_model_dir)).model.config.hidden_size
    vec = torch.linspace(-1, 1, hidden)
    save_tensors(tmp_path / "v.safetensors", {"direction": vec}, {"layer": 1})
    result = run(
        tiny_model_dir, tiny_suite, tmp_path / "a", "--artifact", str(tmp_path / "v.safetensors"), "--strengths", "2"
    )
    assert result.exit_code == 0, result.output
    copied = load_artifact(tmp_path / "a" / "artifacts" / "cheer" / "artifact-vector")
    assert isinstance(copied, VectorIntervention) and torch.equal(copied.vector, vec)
    meta = json.loads((tmp_path / "a" / "artifacts" / "cheer" / "artifact-vector" / "meta.json").read_text())
    assert len(meta["source_sha256"]) == 64

    # a LoRA exported as a standard peft adapter comes back with its scaling folded into B
    from steer_pu.integrations.export import export_peft

    lora = LoRAIntervention(1, {"lora_A": torch.randn(4, 64), "lora_B": torch.randn(hidden, 4)})
    export_peft(lora, 1.0, tmp_path / "adapter", base_model=str(tiny_model_dir))
    back = load_artifact(tmp_path / "adapter")
    assert isinstance(back, LoRAIntervention) and back.layer == 1
    torch.testing.assert_close(
        back.tensors["lora_B"] @ back.tensors["lora_A"], lora.tensors["lora_B"] @ lora.tensors["lora_A"]
    )
    result = run(
        tiny_model_dir, tiny_suite, tmp_path / "b", "--artifact", str(tmp_path / "adapter"), "--strengths", "1"
    )
    assert result.exit_code == 0, result.output


def test_ready_artifact_errors(tiny_model_dir, tiny_suite, tmp_path):
    torch.save({"v": torch.zeros(3)}, tmp_path / "v.pt")
    result = run(tiny_model_dir, tiny_suite, tmp_path / "x", "--artifact", str(tmp_path / "v.pt"), "--strengths", "1")
    assert result.exit_code == 2 and "pickle" in result.output
    assert not (tmp_path / "x").exists()
    result = run(
        tiny_model_dir, tiny_suite, tmp_path / "y", "--artifact", str(tmp_path / "missing"), "--strengths", "1"
    )
    assert result.exit_code == 2 and "no such file" in result.output
    save_tensors(tmp_path / "m.safetensors", {"m": torch.zeros(2, 2)}, {"layer": 1})
    with pytest.raises(SteerPuError, match="1-D"):
        load_artifact(tmp_path / "m.safetensors")
    # a well-formed vector of the wrong width for this model: refused before anything is written
    save_tensors(tmp_path / "w.safetensors", {"vector": torch.ones(7)}, {"layer": 1})
    result = run(
        tiny_model_dir, tiny_suite, tmp_path / "w", "--artifact", str(tmp_path / "w.safetensors"), "--strengths", "1"
    )
    assert result.exit_code == 2 and "w.safetensors" in result.output and "'vector'" in result.output, result.output
    assert not (tmp_path / "w").exists()


def test_plugin_errors_are_user_errors(tiny_suite, tmp_path, monkeypatch):
    """An abstract class, a module that fails on import, or an unknown name: one line, exit 2."""
    (tmp_path / "abstract_plugin.py").write_text(
        "from steer_pu.methods import Method\n\nclass Half(Method):\n    name = 'half'\n    forms = ('vector',)\n"
    )
    (tmp_path / "broken_plugin.py").write_text("raise RuntimeError('boom [/INST]')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for method, message in [
        ("abstract_plugin:Half", "Half is abstract (no fit)"),
        ("steer_pu.methods.base:Method", "Method is abstract (no fit)"),
        ("broken_plugin:Anything", "cannot import (RuntimeError: boom [/INST])"),
        ("no_such_plugin_module:X", "cannot import (ModuleNotFoundError"),
        ("nope", "unknown method 'nope'"),
    ]:
        result = runner.invoke(
            app, ["run", "--suite", str(tiny_suite), "--out", str(tmp_path / "r"), "--method", method]
        )
        assert result.exit_code == 2 and message in result.output, (method, result.output)
        assert "Traceback" not in result.output and not (tmp_path / "r").exists()
