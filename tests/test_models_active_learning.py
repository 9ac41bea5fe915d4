"""The ranking core of active learning (``models/active_learning.py``) on the tiny trained model:
margins, the strategies and the filters that ``veille annotate suggest`` and the learning
curve share."""

from __future__ import annotations

import pytest
import torch

from veille.annotation.corpus import read_corpus
from veille.annotation.document import Example
from veille.models.active_learning import Candidate, Selection, score_sentences, select, unscored, words
from veille.models.predictor import Margins, threshold_margins


@pytest.fixture(scope="module")
def predictor(tiny_trained_model):
    from veille.models.predictor import Predictor

    return Predictor.load(tiny_trained_model, device="cpu")


def candidate(sentence_id: str, text: str, margin: float) -> Candidate:
    return Candidate(Example(sentence_id, text, meta={"doc": sentence_id.rsplit("-s", 1)[0]}), margin, words(text))


def test_threshold_margin_is_zero_at_the_threshold_and_one_at_certainty() -> None:
    """A pair whose best score sits on its label's threshold is a coin toss, whatever the threshold."""
    probs = torch.tensor([[0.30, 0.9], [0.95, 0.2], [0.0, 0.2], [0.65, 0.99]])
    allowed = torch.tensor([[True, False], [True, True], [True, True], [True, True]])
    margins = threshold_margins(probs, allowed, torch.tensor([0.30, 0.60]))
    # on label 0's threshold (label 1 forbidden); far above; 0.2 is 2/3 of the way down to 0; 0.99 above 0.6
    assert margins.tolist() == pytest.approx([0.0, (0.95 - 0.3) / 0.7, (0.6 - 0.2) / 0.6, (0.99 - 0.6) / 0.4])
    assert Margins([0.9, 0.4], [0.7]).lowest == 0.4 and Margins([], []).lowest == 1.0


def test_predict_with_margins_predicts_what_predict_does(predictor, mini_gold) -> None:
    """Same predictions as ``predict``, plus one margin per word and one per candidate pair."""
    from veille.models.decoding import pair_entities
    from veille.models.encoding import encode

    texts = [example.text for example in read_corpus(mini_gold)]
    measured = predictor.predict_with_margins(texts)
    assert [(e.entities, e.relations) for e in predictor.predict(texts)] == [(e.entities, e.relations) for e, _ in measured]
    for (example, margins), text in zip(measured, texts):
        assert len(margins.words) == len(encode(predictor.tokenizer, text).words)
        assert len(margins.pairs) == len(pair_entities(example.entities, predictor.schema))
        assert all(0.0 <= m <= 1.0 for m in margins.words + margins.pairs)
    assert any(margins.pairs for _, margins in measured)


def test_ranking_puts_a_sentence_the_model_gets_wrong_before_one_it_knows(predictor, mini_gold) -> None:
    """Sure and unsure are defined by the model's correctness, not by the margin under test.

    Positive control: the trained model predicts some training sentence exactly right with a
    clear margin; the sentence it gets most wrong-and-unsure must rank before it even when it
    comes later in the pool, with margins measured by ``score_sentences`` as the callers do.
    """
    gold = read_corpus(mini_gold)
    measured = predictor.predict_with_margins([g.text for g in gold])
    right = [(m.lowest, g) for g, (p, m) in zip(gold, measured) if {e.span() for e in p.entities} == {e.span() for e in g.entities}]
    wrong = [(m.lowest, g) for g, (p, m) in zip(gold, measured) if {e.span() for e in p.entities} != {e.span() for e in g.entities}]
    assert right and wrong, "positive control: the model should get some training sentences right and some wrong"
    sure_margin, sure = max(right, key=lambda item: item[0])
    unsure_margin, unsure = min(wrong, key=lambda item: item[0])
    assert sure_margin >= 0.2 > unsure_margin, "positive control: the model is clearly surer of a sentence it gets right"
    pool = list(score_sentences(predictor, [sure, unsure], batch_size=1))
    assert [c.margin for c in pool] == pytest.approx([sure_margin, unsure_margin], abs=1e-5)
    assert [c.example.id for c in pool] == [sure.id, unsure.id] and pool[0].example.meta == sure.meta  # the pool's ids, not the predictor's
    assert [c.example.text for c in select(pool, Selection(n=2))] == [unsure.text, sure.text]
    assert [c.example.text for c in select(pool, Selection(n=1))] == [unsure.text]
    assert [c.example.text for c in select(pool, Selection(n=2), gold_texts=[unsure.text])] == [sure.text]


def test_unscored_candidates_hide_the_gold_and_random_ignores_margins(mini_gold) -> None:
    gold = read_corpus(mini_gold)
    pool = unscored(gold)
    assert all(c.example.entities == [] and c.example.relations == [] and c.margin == 1.0 for c in pool)
    assert any(g.entities for g in gold)  # the gold had something to hide
    chosen = select(pool, Selection(n=5, strategy="random", seed=3))
    assert len({c.example.id for c in chosen}) == 5 and chosen == select(pool, Selection(n=5, strategy="random", seed=3))


def test_selection_skips_gold_caps_documents_and_drops_near_duplicates() -> None:
    pool = [
        candidate("a-s000", "Meta rachète Scale AI pour 14 milliards.", 0.01),
        candidate("a-s001", "Google investit dans Anthropic.", 0.02),
        candidate("a-s002", "Apple ouvre un laboratoire à Paris.", 0.03),
        candidate("b-s000", "Meta rachète Scale AI pour 15 milliards !", 0.04),  # the first with another number
        candidate("c-s000", "Mistral AI lève 600 millions d'euros.", 0.05),
        candidate("d-s000", "Le temps sera doux demain.", 0.90),
    ]
    gold = ["Mistral AI lève 600 millions d'euros."]
    chosen = select(pool, Selection(n=10, per_document=2), gold)
    assert [c.example.id for c in chosen] == ["a-s000", "a-s001", "d-s000"]
    assert not {c.example.text for c in chosen} & set(gold)
    assert [c.example.id for c in select(pool, Selection(n=2, per_document=2), gold)] == ["a-s000", "a-s001"]


def test_random_is_a_seeded_draw_and_diverse_spreads_over_uncertain_sentences() -> None:
    pool = [candidate(f"d{i}-s000", f"Phrase numéro {'un deux trois quatre cinq six sept huit'.split()[i]} sur Meta.", i / 10) for i in range(8)]
    first = select(pool, Selection(n=4, strategy="random", seed=1, similarity=1.0))
    assert first == select(pool, Selection(n=4, strategy="random", seed=1, similarity=1.0))
    assert first != select(pool, Selection(n=4, strategy="random", seed=2, similarity=1.0))
    similar = [candidate(f"s{i}-s000", f"Meta rachète Scale AI et {word}.", 0.01 * i) for i, word in enumerate(["Wiz", "Figma", "Slack"])]
    other = candidate("o-s000", "Le gouvernement présente son budget.", 0.2)
    assert [c.example.id for c in select([*similar, other], Selection(n=2, similarity=1.0))] == ["s0-s000", "s1-s000"]
    assert [c.example.id for c in select([*similar, other], Selection(n=2, strategy="diverse", similarity=1.0))] == ["s0-s000", "o-s000"]
