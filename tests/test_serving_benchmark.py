"""Inference benchmarks: the baseline is fair (the exported token classifier computes the joint model's entity logits), the inputs and the load run."""

from __future__ import annotations

import json

import torch
from transformers import AutoModelForTokenClassification, pipeline

from veille.models.checkpoint import load_model
from veille.serving.benchmark import corpus_sentences, export_token_classifier


def test_exported_token_classifier_has_the_joint_models_weights(tiny_trained_model, tmp_path) -> None:
    exported = export_token_classifier(tiny_trained_model, tmp_path / "hf")
    joint = load_model(tiny_trained_model)
    classifier = AutoModelForTokenClassification.from_pretrained(exported)
    sentences = corpus_sentences(3)
    batch = joint.tokenizer(sentences, padding=True, return_tensors="pt")
    with torch.inference_mode():
        expected = joint.model.token_head(joint.model.encoder(**batch).last_hidden_state)
        assert torch.allclose(classifier(**batch).logits, expected, atol=1e-5)
    assert classifier.config.id2label[0] == "O" and len(classifier.config.id2label) == len(joint.model.config.bio_labels)
    tagger = pipeline("token-classification", model=str(exported), aggregation_strategy="first", device=torch.device("cpu"))
    assert len(tagger(sentences)) == 3


def test_corpus_sentences_cycles_real_sentences() -> None:
    sentences = corpus_sentences(500)
    assert len(sentences) == 500 and all(s.strip() for s in sentences)


def test_unpunctuated_text_is_one_sentence_of_the_asked_length() -> None:
    import unicodedata

    from veille.annotation.sentences import split_sentences
    from veille.serving.benchmark import unpunctuated_text

    for chars in (5_000, 20_000):
        text = unpunctuated_text(chars)
        assert chars - 1 <= len(text) <= chars and len(split_sentences(text)) == 1
        assert not any(unicodedata.category(ch).startswith("P") for ch in text) and "  " not in text


def test_encoder_share_is_the_encoders_part_of_predict_time(tiny_trained_model) -> None:
    """The share behind the GPU estimate of the ray benchmark: the encoder's forward time over the whole pipeline's, strictly between 0 and 1."""
    from veille.annotation.articles import Article
    from veille.serving.benchmark import encoder_share

    articles = [Article(f"a{i}", text, "test") for i, text in enumerate(corpus_sentences(20))]
    assert 0.0 < encoder_share(tiny_trained_model, articles) < 1.0


def test_bounded_load_run_against_a_local_server(tiny_trained_model, tmp_path) -> None:
    from typer.testing import CliRunner

    from veille.serving.benchmark import app

    out = tmp_path / "load.json"
    result = CliRunner().invoke(app, ["load", "--model", str(tiny_trained_model), "--requests", "24", "--concurrency", "4", "--json", str(out)])
    assert result.exit_code == 0, result.output
    figures = json.loads(out.read_text())
    assert figures["statuses"] == {"200": 24} and figures["concurrency"] == 4
    assert 0 < figures["p50_ms"] <= figures["p95_ms"] <= figures["max_ms"]
    assert figures["model_calls"] < 24  # concurrent requests shared model calls
