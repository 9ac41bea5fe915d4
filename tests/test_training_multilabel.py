"""Several relations between the same two entities are learnt and predicted, as the guidelines ask.

« X dirige et a fondé Y » is EMPLOYEE_OF and FOUNDED. A softmax over one class per pair
(and targets that keep the last label written) can only ever give one of them. A tiny
model trained on a few sentences until it fits must give both, while the control
sentences, whose pair holds one label or none, keep exactly that: the model learnt
which labels hold, it does not emit every label of a pair.
"""

from __future__ import annotations

import json

import pytest

from veille.annotation.corpus import read_corpus
from veille.models.predictor import Predictor
from veille.training.config import TrainConfig
from veille.training.trainer import train

SENTENCES = [  # (text, person, organisation, relation labels between them)
    ("Arthur Mensch dirige et a fondé Mistral AI.", "Arthur Mensch", "Mistral AI", ["EMPLOYEE_OF", "FOUNDED"]),
    ("Julien Chaumond dirige et a fondé Hugging Face.", "Julien Chaumond", "Hugging Face", ["EMPLOYEE_OF", "FOUNDED"]),
    ("Thomas Wolf dirige et a fondé Photoroom.", "Thomas Wolf", "Photoroom", ["EMPLOYEE_OF", "FOUNDED"]),
    ("Sophie Durand a fondé Criteo.", "Sophie Durand", "Criteo", ["FOUNDED"]),
    ("Paul Martin a fondé Doctolib.", "Paul Martin", "Doctolib", ["FOUNDED"]),
    ("Marie Dupont dirige Renault.", "Marie Dupont", "Renault", ["EMPLOYEE_OF"]),
    ("Luc Bernard dirige Ubisoft.", "Luc Bernard", "Ubisoft", ["EMPLOYEE_OF"]),
    ("Claire Petit a rencontré Orange.", "Claire Petit", "Orange", []),
]


def gold_line(index: int, text: str, person: str, organisation: str, labels: list[str]) -> str:
    entities = [
        {"id": "T1", "start": text.index(person), "end": text.index(person) + len(person), "label": "PER"},
        {"id": "T2", "start": text.index(organisation), "end": text.index(organisation) + len(organisation), "label": "ORG"},
    ]
    relations = [{"head": "T1", "tail": "T2", "label": label} for label in labels]
    return json.dumps({"id": f"multi-s{index:03}", "text": text, "entities": entities, "relations": relations}, ensure_ascii=False)


@pytest.mark.slow
@pytest.mark.parametrize(
    "options", [{}, {"relation_encoder": "markers"}, {"context_attention": True}, {"between_max": True, "pair_distance": True}], ids=["shared", "markers", "context", "max+distance"]
)
def test_a_pair_with_two_gold_labels_is_learnt_and_predicted_with_both(tmp_path, tiny_camembert, options):
    data = tmp_path / "multi.jsonl"
    data.write_text("\n".join(gold_line(i, *sentence) for i, sentence in enumerate(SENTENCES)) + "\n", encoding="utf-8")
    gold = read_corpus(data)  # `corpus validate` accepts two labels on one pair
    assert [len(g.relations) for g in gold][:3] == [2, 2, 2]
    base = tiny_camembert(tmp_path / "base", [text for text, *_ in SENTENCES] * 8, vocab_size=200)
    config = TrainConfig(
        base_model=str(base), train_files=[str(data)], dev_files=[str(data)], output=str(tmp_path / "model"), epochs=40, batch_size=4,
        lr_encoder=3e-3, lr_heads=1e-2, warmup_ratio=0.0, dropout=0.0, max_length=64, stride=16, device="cpu", patience=40, **options,
    )
    train(config, progress=False)
    predictor = Predictor.load(tmp_path / "model", device="cpu")
    assert {key: getattr(predictor.model.config, key) for key in options} == options  # saved and loaded with the model
    for example, (text, person, organisation, labels) in zip(predictor.predict([text for text, *_ in SENTENCES]), SENTENCES):
        assert [(example.mention(e), e.label) for e in example.entities] == [(person, "PER"), (organisation, "ORG")], text
        assert sorted(r.label for r in example.relations) == labels, text
