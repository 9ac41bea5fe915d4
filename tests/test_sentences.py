"""The French splitter: exact offsets on the seeds, and the hard cases of news text."""

import hashlib

import pytest

from veille.annotation.sentences import split_sentences


def texts(text):
    return [s.text for s in split_sentences(text)]


@pytest.fixture(scope="module")
def seed_articles(repo):
    return {p.name: p.read_text(encoding="utf-8") for p in sorted((repo / "seeds").glob("*.txt"))}


def test_seed_offsets_slice_back_to_the_article(seed_articles):
    for article in seed_articles.values():
        sentences = split_sentences(article)
        assert len(sentences) > 40
        for sentence in sentences:
            assert article[sentence.start : sentence.end] == sentence.text
            assert sentence.text == sentence.text.strip()
        # sentences are in order and only whitespace lies between them
        gaps = [article[a.end : b.start] for a, b in zip(sentences, sentences[1:])]
        assert all(a.end <= b.start for a, b in zip(sentences, sentences[1:]))
        assert all(not gap.strip() for gap in gaps)


def test_seed_sentences_cover_every_non_space_character(seed_articles):
    for article in seed_articles.values():
        sentences = split_sentences(article)
        kept = "".join(article[s.start : s.end] for s in sentences)
        assert "".join(kept.split()) == "".join(article.split())


def test_seeds_are_never_cut_after_inc_or_m(seed_articles):
    for article in seed_articles.values():
        for sentence in split_sentences(article):
            assert not sentence.text.endswith((" Inc.", " M.", " Mme"))
    second = seed_articles["002_b98862f45c95b480.txt"]
    assert any("Meta Platforms Inc. a réussi à attirer Ruoming Pang" in s for s in texts(second))
    assert any("Alphabet Inc. et qui gérait" in s for s in texts(second))


def test_glued_sentences_of_the_first_seed_are_separated(seed_articles):
    sentences = texts(seed_articles["000_91df448ff0e3f775.txt"])
    glued = [i for i, s in enumerate(sentences) if s.endswith("campagnes personnalisées")]
    assert glued and sentences[glued[0] + 1].startswith("Nous parlons de systèmes")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("M. Dupont a rejoint Meta. Mme Durand part.", ["M. Dupont a rejoint Meta.", "Mme Durand part."]),
        ("Apple Inc. a publié ses comptes. Meta Platforms Inc. aussi.", ["Apple Inc. a publié ses comptes.", "Meta Platforms Inc. aussi."]),
        ("La société Dupont S.A. Rachète tout.", ["La société Dupont S.A. Rachète tout."]),
        ("Il a levé 14,3 millions d'euros. Le reste suit.", ["Il a levé 14,3 millions d'euros.", "Le reste suit."]),
        ("Une hausse de 3.5 % cette année. Bien.", ["Une hausse de 3.5 % cette année.", "Bien."]),
        ("Il a dit : « Nous recrutons. » Puis il est parti.", ["Il a dit : « Nous recrutons. »", "Puis il est parti."]),
        ("« Est-ce la fin ? » demande-t-il.", ["« Est-ce la fin ? » demande-t-il."]),
        ("Attendez… Non, rien. Et puis... Voilà.", ["Attendez…", "Non, rien.", "Et puis...", "Voilà."]),
        ("Trois points :\n1. Recruter.\n2. Investir.\n3. Accélérer.", ["Trois points :", "1. Recruter.", "2. Investir.", "3. Accélérer."]),
        ("Le groupe, qui a\nrecruté 200 ingénieurs, grandit.", ["Le groupe, qui a\nrecruté 200 ingénieurs, grandit."]),
        ("Il travaille chez\nMistral AI depuis 2023.", ["Il travaille chez\nMistral AI depuis 2023."]),
        ("Titre sans point\nLe texte commence ici.", ["Titre sans point", "Le texte commence ici."]),
        ("Premier paragraphe.\n\nSecond paragraphe.", ["Premier paragraphe.", "Second paragraphe."]),
        ("Des campagnes personnaliséesNous parlons d'IA.", ["Des campagnes personnalisées", "Nous parlons d'IA."]),
        ("OpenAI, DeepMind, LinkedIn et YouTube recrutent.", ["OpenAI, DeepMind, LinkedIn et YouTube recrutent."]),
        ("John F. Kennedy et J.-C. Decaux. Fin.", ["John F. Kennedy et J.-C. Decaux.", "Fin."]),
        ("Lancé en sept. 2024, le produit marche. Voilà.", ["Lancé en sept. 2024, le produit marche.", "Voilà."]),
        ("Le PDG de l'IA. Des projets arrivent.", ["Le PDG de l'IA.", "Des projets arrivent."]),
        ("Quoi ?! Oui !", ["Quoi ?!", "Oui !"]),
        ("", []),
    ],
)
def test_hard_cases(text, expected):
    sentences = split_sentences(text)
    assert [s.text for s in sentences] == expected
    assert all(text[s.start : s.end] == s.text for s in sentences)


def test_seeds_are_the_shared_seed_articles_unchanged(repo, seed_articles):
    """seeds/SHA256SUMS was written from the project's shared seed articles: the copies match it byte for byte.

    The manifest lives in the repository, so the check runs on every clone (no folder
    outside the checkout is needed).
    """
    manifest = dict(reversed(line.split("  ", 1)) for line in (repo / "seeds" / "SHA256SUMS").read_text().splitlines())
    assert sorted(seed_articles) == sorted(manifest)
    for name in seed_articles:
        assert hashlib.sha256((repo / "seeds" / name).read_bytes()).hexdigest() == manifest[name], name
