"""The joint model's own arithmetic: the between-arguments features, the distance buckets, the attended context, the multi-label loss, the window check."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoConfig

from veille.annotation.schema import load_schema
from veille.models.encoding import bio_labels
from veille.models import joint
from veille.models.joint import JointConfig, JointModel, distance_bucket, position_limit, relation_loss

SCHEMA = load_schema()


def joint_config(max_length: int = 64) -> JointConfig:
    return JointConfig(bio_labels(SCHEMA), SCHEMA.entity_labels, SCHEMA.relation_labels, max_length=max_length)


def test_between_feature_keeps_its_precision_in_bfloat16():
    """A difference of prefix sums taken in bfloat16 is off by percents late in a long sentence."""
    generator = torch.Generator().manual_seed(0)
    states = (torch.randn(1, 300, 16, generator=generator) + 3.0).to(torch.bfloat16)
    start, end = torch.tensor([250]), torch.tensor([262])
    exact = states[0, 250:262].double().mean(0)
    between = JointModel._between(states, torch.tensor([0]), start, end)[0].double()
    assert between.dtype == torch.float64 and ((between - exact).abs() / exact.abs()).max() < 0.01


@pytest.mark.parametrize("rows", [65_536, 8], ids=["one-chunk", "a-pair-per-chunk"])
def test_between_max_is_each_pairs_max_over_the_tokens_between_its_arguments_only(monkeypatch, rows):
    """Checked against a plain per-pair loop, in one chunk of pairs or many; touching arguments get zeros, and other sentences or tokens outside [start, end) never count."""
    monkeypatch.setattr(joint, "MAX_POOLED_ROWS", rows)
    states = torch.randn(2, 9, 5)
    sentence = torch.tensor([0, 1, 0, 1])
    start, end = torch.tensor([2, 0, 4, 6]), torch.tensor([5, 9, 4, 7])
    got = JointModel._between_max(states, sentence, start, end)
    for pair, s in enumerate(sentence.tolist()):
        expected = states[s, start[pair] : end[pair]].amax(0) if end[pair] > start[pair] else torch.zeros(5)
        torch.testing.assert_close(got[pair], expected)
    outside = states.clone()
    outside[0, [0, 1, 5, 6, 7, 8]] = 1e4
    torch.testing.assert_close(JointModel._between_max(outside, sentence, start, end)[[0, 2]], got[[0, 2]])


def test_distance_buckets_are_log_scale_and_capped():
    gaps = torch.tensor([-3, 0, 1, 2, 3, 4, 7, 8, 63, 64, 127, 128, 10_000])
    assert distance_bucket(gaps).tolist() == [0, 0, 1, 2, 2, 3, 3, 4, 6, 7, 7, 8, 8]


def test_pair_features_reach_the_relation_head_and_the_order_of_the_arguments_counts(tiny_base_model):
    """With ``pair_distance`` the same two arguments score differently in the two directions even when their states are equal; without it they cannot."""
    encoder_config = AutoConfig.from_pretrained(tiny_base_model)
    states = torch.randn(1, 8, encoder_config.hidden_size)
    states[0, 5] = states[0, 1]  # both arguments one token long, with the same state
    spans = torch.tensor([[1, 1, 5, 5], [5, 5, 1, 1]])
    labels = torch.zeros(2, 2, dtype=torch.long)
    allowed = torch.ones(2, len(SCHEMA.relation_labels), dtype=torch.bool)
    for pair_distance in (True, False):
        torch.manual_seed(0)
        config = JointConfig(bio_labels(SCHEMA), SCHEMA.entity_labels, SCHEMA.relation_labels, max_length=64, between_max=True, pair_distance=pair_distance)
        model = JointModel.from_encoder_config(encoder_config, config).eval()
        logits = model.relation_logits(states, torch.ones(1, 8, dtype=torch.bool), torch.tensor([0, 0]), spans, labels, allowed)
        assert torch.allclose(logits[0], logits[1]) is not pair_distance


def test_attended_context_is_each_pairs_softmax_over_its_own_sentence_tokens_only(tiny_base_model):
    """Checked against a plain per-pair loop: softmax of query · state / √H over the pair's
    sentence's real tokens; padding and the other sentences of the batch take no part."""
    torch.manual_seed(0)
    config = JointConfig(bio_labels(SCHEMA), SCHEMA.entity_labels, SCHEMA.relation_labels, max_length=64, context_attention=True)
    model = JointModel.from_encoder_config(AutoConfig.from_pretrained(tiny_base_model), config)
    hidden = model.encoder.config.hidden_size
    states = torch.randn(3, 7, hidden)
    token_mask = torch.tensor([[True] * 7, [True] * 4 + [False] * 3, [True] * 2 + [False] * 5])
    sentence = torch.tensor([1, 0, 1, 2])
    arguments = torch.randn(4, 4 * hidden)
    got = model._attended_context(states, token_mask, sentence, arguments)
    for pair, s in enumerate(sentence.tolist()):
        real = states[s, token_mask[s]]
        weights = (model.context_query(arguments[pair]) @ real.T / hidden**0.5).softmax(-1)
        torch.testing.assert_close(got[pair], weights @ real)
    padded = states.clone()
    padded[1, 4:] = 1e4  # what sits in padding cannot change a pair's context
    torch.testing.assert_close(model._attended_context(padded, token_mask, sentence, arguments), got)


def test_relation_loss_counts_allowed_classes_only_and_every_gold_label():
    logits = torch.tensor([[4.0, 4.0, 9.0], [-4.0, -4.0, 0.0]])
    targets = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    allowed = torch.tensor([[True, True, False], [True, True, False]])
    loss = relation_loss(logits, targets, allowed)
    assert loss.item() == pytest.approx(4 * torch.nn.functional.softplus(torch.tensor(-4.0)).item() / 2, rel=1e-5)  # the forbidden 9.0 costs nothing
    assert relation_loss(logits, torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]), allowed) > loss  # dropping a gold label is wrong


def test_a_window_longer_than_the_encoder_positions_is_refused_when_the_model_is_built(tiny_base_model):
    encoder_config = AutoConfig.from_pretrained(tiny_base_model)
    limit = position_limit(encoder_config)
    assert limit == encoder_config.max_position_embeddings - encoder_config.pad_token_id - 1  # RoBERTa-style numbering
    model = JointModel.from_encoder_config(encoder_config, joint_config(limit))
    full = torch.full((1, limit), 5)
    assert model.encoder(input_ids=full, attention_mask=torch.ones_like(full)).last_hidden_state.shape[1] == limit  # the limit is usable
    with pytest.raises((IndexError, RuntimeError)):
        model.encoder(input_ids=torch.full((1, limit + 1), 5), attention_mask=torch.ones((1, limit + 1), dtype=torch.long))  # and is the limit
    with pytest.raises(ValueError, match=f"max_length {limit + 1} exceeds the encoder's position limit of {limit} tokens"):
        JointModel.from_encoder_config(encoder_config, joint_config(limit + 1))
