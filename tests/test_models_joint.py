"""The joint model's own arithmetic: the between-arguments feature, the attended context, the multi-label loss, the window check."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoConfig

from veille.annotation.schema import load_schema
from veille.models.encoding import bio_labels
from veille.models.joint import JointConfig, JointModel, position_limit, relation_loss

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
