"""What a newcomer meets first: the assembled `veille` command, its version and help screens."""

from __future__ import annotations

import os
import subprocess
import sys

from veille import __version__


def veille(*args: str) -> subprocess.CompletedProcess:
    """Run the real command; a wide terminal, so help screens keep one line per option."""
    env = {**os.environ, "COLUMNS": "250"}
    return subprocess.run([sys.executable, "-m", "veille", *args], capture_output=True, text=True, timeout=120, env=env)


def test_version():
    result = veille("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"veille {__version__}"


def test_messages_keep_their_square_brackets(capsys):
    """rich markup must never eat data: `veille[offline]` and `runs/[draft]` print as written."""
    from veille.annotation.console import fail, warning

    exit_ = fail("pip install 'veille[offline]' then look in runs/[draft]")
    warning("[bold]not markup[/bold]", tag="skipped")
    err = capsys.readouterr().err
    assert exit_.exit_code == 2
    assert "pip install 'veille[offline]' then look in runs/[draft]" in err and "[bold]not markup[/bold]" in err


def test_a_model_path_with_brackets_is_named_whole(tmp_path):
    article = tmp_path / "a.txt"
    article.write_text("Mistral AI recrute.", encoding="utf-8")
    result = veille("predict", "--model", str(tmp_path / "runs" / "[draft]"), str(article))
    assert result.returncode == 2 and f"{tmp_path / 'runs' / '[draft]'}" in result.stderr


def test_predict_with_no_existing_input_stops_before_loading_the_model(tmp_path):
    """Nothing to do: exit 2 at once, the missing file named without a line number 0, no model load."""
    result = veille("predict", "--model", str(tmp_path / "no-model-here"), str(tmp_path / "missing.txt"))
    assert result.returncode == 2
    assert f"{tmp_path / 'missing.txt'}: <file>: no such file or folder" in result.stderr and ":0:" not in result.stderr
    assert "nothing to predict" in result.stderr and "cannot load model" not in result.stderr


def test_train_without_a_preset_picks_one_that_runs_here_and_says_so():
    from veille.training.config import preset_for_machine

    assert preset_for_machine("cpu") == "offline"
    result = veille("train", "--device", "cpu", "--set", "epochs=many")  # stops at the config check, before any model
    assert "preset: offline (no GPU here; choose with --config: default (camembert-base" in result.stderr
    assert result.returncode == 2 and "epochs: expected int" in result.stderr


def test_help_screens_read_like_a_cli_not_like_python():
    screens = {command: veille(*command.split(), "--help").stdout for command in ("", "train", "evaluate", "predict", "serve", "corpus validate", "annotate push", "export onnx")}
    for command, text in screens.items():
        assert "<bool>" not in text and "<list" not in text and "<int>" not in text, command
    assert "offline (e5-small-offline, 12 epochs, 4 frozen layers)" in screens["train"]
    device_lines = {command: line for command, text in screens.items() for line in text.splitlines() if "--device" in line}
    assert set(device_lines) == {"train", "evaluate", "predict", "serve"}
    assert all("DEVICE" in line and "auto (the GPU when there is one), cpu, cuda, cuda:N or mps." in line for line in device_lines.values()), device_lines
    assert {command for command, text in screens.items() if "--runtime" in text and "--threads" in text} == {"evaluate", "predict", "serve"}
    assert "--int8" in screens["export onnx"] and "MODEL_DIR" in screens["export onnx"]


def test_loading_an_encoder_prints_no_transformers_report(tiny_base_model, capfd):
    from veille.models.joint import JointConfig, JointModel

    JointModel.from_pretrained_encoder(str(tiny_base_model), JointConfig(["O", "B-PER", "I-PER"], ["PER"], ["X"], max_length=64))
    out, err = capfd.readouterr()
    assert "LOAD REPORT" not in out + err and "Loading weights" not in out + err


def test_progress_bars_update_rarely_when_stderr_is_a_log():
    from veille.annotation.console import progress_interval

    assert progress_interval() == 30.0  # pytest captures stderr: not a terminal


def test_the_printed_evaluation_table_has_a_row_per_label():
    from rich.console import Console

    from veille.training.report import console_table

    counts = {"precision": 1.0, "recall": 0.5, "f1": 0.6667, "support": 2}
    section = {"micro": counts, "macro": {"f1": 0.6667}, "per_label": {"PER": counts, "ORG": counts}}
    metrics = {"sentences": 3, "entities": section, "relations": section, "relations_gold_entities": section}
    console = Console(width=120, record=True)
    console.print(console_table(metrics))
    text = console.export_text()
    assert text.count("  PER") == 3 and text.count("  ORG") == 3 and "0.667" in text
