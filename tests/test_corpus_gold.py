"""The shipped gold corpus: valid, compiled from its sources, varied, split by document,
and described truthfully by its data card."""

import hashlib
import json
import re
from collections import Counter

import pytest
from typer.testing import CliRunner

from veille.annotation.authoring import far_relation_share
from veille.annotation.corpus import read_corpus
from veille.annotation.schema import load_schema
from veille.annotation.sentences import split_sentences
from veille.annotation.stats import corpus_stats
from veille.cli import app

SPLITS = ("train", "dev", "test", "test-articles", "test-general", "test-press", "test-encyclopedic", "test-world", "test-reference", "seed")
REGISTERS = {"auth": "test", "art": "test-articles", "gen": "test-general", "prs": "test-press", "enc": "test-encyclopedic", "wld": "test-world", "ref": "test-reference"}  # document id prefix → its test split


@pytest.fixture(scope="module")
def corpus_dir(repo):
    return repo / "annotation" / "corpus"


@pytest.fixture(scope="module")
def corpus(corpus_dir):
    return {split: read_corpus(corpus_dir / f"{split}.jsonl") for split in SPLITS}


@pytest.fixture(scope="module")
def authored(corpus):
    """Every sentence veille's authors wrote: the three registers, all splits but the seed articles."""
    return [e for split in SPLITS if split != "seed" for e in corpus[split]]


def register(example) -> str:
    return example.doc.split("-", 1)[0]


def masked(example):
    """The sentence with each entity mention replaced by its label."""
    text, out, last = example.text, [], 0
    for entity in sorted(example.entities, key=lambda e: e.start):
        out += [text[last : entity.start], f"[{entity.label}]"]
        last = entity.end
    return "".join(out + [text[last:]])


def test_compiled_files_are_up_to_date_with_their_sources(corpus_dir, tmp_path):
    result = CliRunner().invoke(app, ["corpus", "compile", "--src", str(corpus_dir / "src"), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    for split in SPLITS:
        assert (tmp_path / f"{split}.jsonl").read_text() == (corpus_dir / f"{split}.jsonl").read_text(), split


def test_a_new_batch_of_a_register_moves_no_earlier_document(tmp_path):
    """``press-v6-e.jsonl`` is split on its own: the documents of ``press-a.jsonl`` keep their split."""

    def documents(prefix, count):
        return "".join(
            json.dumps({"doc": f"{prefix}-{i:03d}", "sentences": [{"text": f"Agence {prefix} {i} recrute.", "entities": [[f"Agence {prefix} {i}", "ORG"]]}]}) + "\n"
            for i in range(count)
        )

    def splits(src):
        out = src.parent / f"{src.name}-out"
        result = CliRunner().invoke(app, ["corpus", "compile", "--src", str(src), "--out", str(out)])
        assert result.exit_code == 0, result.output
        return {e.doc: e.split for path in out.glob("*.jsonl") if path.stat().st_size for e in read_corpus(path)}

    src = tmp_path / "src"
    src.mkdir()
    (src / "seeds.jsonl").write_text("")
    (src / "press-a.jsonl").write_text(documents("prs-a", 20))
    before = splits(src)
    (src / "press-v6-e.jsonl").write_text(documents("prs-e", 20))
    after = splits(src)
    assert {doc: after[doc] for doc in before} == before
    added = Counter(split for doc, split in after.items() if doc.startswith("prs-e"))
    assert added == {"train": 14, "dev": 3, "test-press": 3}  # cut 70/15/15 on its own
    (src / "press-f.jsonl").write_text(documents("prs-f", 20))  # a part of the first batch: that batch is cut anew
    assert {doc: split for doc, split in splits(src).items() if doc.startswith("prs-a")} != before


def test_sizes_and_label_counts(authored):
    schema = load_schema()
    assert len(authored) >= 4200
    assert len({e.doc for e in authored}) >= 330
    entities = Counter(e.label for ex in authored for e in ex.entities)
    relations = Counter(r.label for ex in authored for r in ex.relations)
    assert {label: entities[label] for label in schema.entity_labels if entities[label] < 150} == {}
    assert {label: relations[label] for label in schema.relation_labels if relations[label] < 100} == {}


def test_corpus_v2_registers(authored):
    """Corpus v2: ≥ 2,400 sentences in ≥ 160 new documents, both new registers well represented."""
    sentences = Counter(register(e) for e in authored)
    documents = Counter(register(e) for e in {e.doc: e for e in authored}.values())
    assert sentences["art"] >= 1200 and sentences["gen"] >= 1200
    assert documents["art"] >= 80 and documents["gen"] >= 80
    without_entities = sum(1 for e in authored if register(e) != "auth" and not e.entities)
    assert without_entities >= 0.1 * (sentences["art"] + sentences["gen"])  # real articles have sentences with no entity


def test_corpus_v3_press_register(authored):
    """Corpus v3: press articles dense in relations, several labels on one pair among them."""
    press = [e for e in authored if register(e) == "prs"]
    assert len(press) >= 600 and len({e.doc for e in press}) >= 36
    assert sum(len(e.relations) for e in press) >= 1.5 * len(press)
    pairs = Counter((e.id, r.head, r.tail) for e in press for r in e.relations)
    assert sum(1 for n in pairs.values() if n > 1) >= 35


@pytest.mark.parametrize("prefix", ["art", "prs"])
def test_real_article_registers_put_arguments_far_apart(authored, prefix):
    """About a fifth of real-article relations have arguments more than 60 characters apart."""
    far, total = far_relation_share(e for e in authored if register(e) == prefix)
    assert far / total >= 0.15


def test_pairs_with_several_labels_are_kept(authored):
    """The guidelines ask for every relation a sentence states: some pairs carry two labels."""
    pairs = Counter((e.id, r.head, r.tail) for e in authored for r in e.relations)
    assert sum(1 for n in pairs.values() if n > 1) >= 50


def test_name_variety(authored):
    persons = {ex.mention(e) for ex in authored for e in ex.entities if e.label == "PER" and " " in ex.mention(e)}
    orgs = {ex.mention(e) for ex in authored for e in ex.entities if e.label == "ORG"}
    assert len(persons) >= 400
    assert len(orgs) >= 250


def test_sentences_are_not_templates(corpus):
    """Over the whole corpus, every split and register: no masked duplicate, no over-used 6-gram."""
    texts = [masked(e) for examples in corpus.values() for e in examples]
    duplicates = [text for text, n in Counter(texts).items() if n > 1]
    assert duplicates == []
    ngram_sentences = Counter()
    for text in texts:
        words = re.findall(r"\[\w+\]|\w+", text.lower())
        ngram_sentences.update({tuple(words[i : i + 6]) for i in range(len(words) - 5)})
    limit = 0.01 * len(texts)
    assert {" ".join(g): n for g, n in ngram_sentences.items() if n > limit} == {}


def test_splits_are_by_document(corpus):
    docs = {split: {e.doc for e in examples} for split, examples in corpus.items()}
    for a in SPLITS:
        for b in SPLITS:
            assert a == b or not docs[a] & docs[b]
    for prefix, test_split in REGISTERS.items():  # each register is cut 70/15/15 on its own
        mine = {split: {d for d in docs[split] if d.startswith(prefix + "-")} for split in ("train", "dev", test_split)}
        total = sum(map(len, mine.values()))
        assert 0.6 < len(mine["train"]) / total < 0.8, prefix
        assert 0.1 < len(mine["dev"]) / total < 0.2 and 0.1 < len(mine[test_split]) / total < 0.2, prefix
        assert all(d.startswith(prefix + "-") for d in docs[test_split])
    assert all(e.split == split for split, examples in corpus.items() for e in examples)


def test_the_authored_test_split_is_unchanged_by_corpus_v2(corpus_dir):
    """Scores on `test` stay comparable across versions: v2 added documents without moving any."""
    digest = hashlib.sha256((corpus_dir / "test.jsonl").read_bytes()).hexdigest()
    assert digest == "40366f88d6a9414441942334024293637455f78641f9279eaa76d6e588298403"


def test_the_second_press_batch_moved_no_earlier_document(corpus):
    """Corpus v6 added 40 press articles as a batch of their own: `test-press` keeps v3's six documents."""
    press = {e.doc for e in corpus["test-press"]}
    assert {d for d in press if d[4] in "abcd"} == {"prs-a-010", "prs-b-002", "prs-b-005", "prs-b-007", "prs-b-009", "prs-d-007"}
    assert len({d for d in press if d[4] in "efgh"}) == 6


def test_seed_split_is_every_sentence_of_the_seeds_split_by_veille(corpus, repo):
    seeds = corpus["seed"]
    for article_path in sorted((repo / "seeds").glob("*.txt")):
        article = article_path.read_text(encoding="utf-8")
        mine = [e for e in seeds if e.meta["article"] == f"seeds/{article_path.name}"]
        assert [(e.meta["start"], e.meta["end"], e.text) for e in mine] == [
            (s.start, s.end, s.text) for s in split_sentences(article)
        ]
    assert sum(len(e.entities) for e in seeds) > 150
    assert sum(len(e.relations) for e in seeds) > 60


def test_data_card_matches_the_stats(corpus, corpus_dir):
    card = (corpus_dir / "README.md").read_text(encoding="utf-8")
    stats = corpus_stats({f"{split}.jsonl": examples for split, examples in corpus.items()})
    table = {}
    for line in card.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == len(stats) + 1 and all(c.isdigit() for c in cells[1:]):
            table[cells[0]] = [int(c) for c in cells[1:]]
    schema = load_schema()
    expected = {
        "documents": [len(s.documents) for s in stats.values()],
        "sentences": [s.sentences for s in stats.values()],
        **{label: [s.entities[label] for s in stats.values()] for label in schema.entity_labels},
        **{label: [s.relations[label] for s in stats.values()] for label in schema.relation_labels},
    }
    assert table == expected
