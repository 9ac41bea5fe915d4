"""Presets and overrides of the training configuration."""

from __future__ import annotations

import pytest

from veille.training.config import ConfigError, corpus_file, load_config


@pytest.mark.parametrize("preset", ["default", "offline", "quick"])
def test_presets_load_and_default_to_the_compiled_corpus(preset):
    config = load_config(preset)
    assert config.train_files == [corpus_file("train")] and config.dev_files == [corpus_file("dev")]
    assert config.epochs > 0 and config.batch_size > 0
    assert config.predicted_pairs_after == 1  # one warm-up epoch on gold pairs only


def test_overrides_win_and_none_is_ignored(tmp_path):
    config = load_config("quick", {"epochs": 7, "lr_encoder": 1, "batch_size": None, "train_files": [tmp_path / "t.jsonl"]})
    assert config.epochs == 7 and config.lr_encoder == 1.0 and config.batch_size == load_config("quick").batch_size
    assert config.train_files == [str(tmp_path / "t.jsonl")]


def test_bad_config_files_name_the_key(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('epochs = "many"\n')
    with pytest.raises(ConfigError, match="mine.toml: epochs: expected int"):
        load_config(str(path))
    path.write_text('num_threads = "four"\n')  # an optional key is type-checked too
    with pytest.raises(ConfigError, match="mine.toml: num_threads: expected int"):
        load_config(str(path))
    path.write_text("predicted_pairs_after = -1\n")
    with pytest.raises(ConfigError, match="mine.toml: predicted_pairs_after: must be at least 0"):
        load_config(str(path))
    path.write_text("min_epoch_sentences = -100\n")
    with pytest.raises(ConfigError, match="mine.toml: min_epoch_sentences: must be at least 0"):
        load_config(str(path))
    path.write_text("epoch = 3\n")
    with pytest.raises(ConfigError, match="unknown key.*epoch"):
        load_config(str(path))
    path.write_text("epochs = \n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(str(path))
    with pytest.raises(ConfigError, match="presets: default, offline, quick"):
        load_config("fast")
