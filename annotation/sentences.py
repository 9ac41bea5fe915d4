"""French sentence splitting with exact character offsets into the article.

Hand-written rules, because the cases that matter in news are specific and testable:
abbreviations (« M. », « Inc. », « S.A. »), « guillemets », decimal commas, ellipses,
numbered lists, lines wrapped inside a paragraph, and sentences glued by a lost line
break (« personnaliséesNous »). pysbd was tried: it cuts after « Inc. » before a capital,
keeps glued sentences together and is no longer maintained.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Abbreviations after which a period never ends a sentence (compared lower-cased, without the dot).
NEVER_FINAL = frozenset(
    "m mm mme mlle mlles dr pr me st ste mgr cf p pp ex env art av bd fig vol no nº n° "
    "janv févr fév avr juil sept oct nov déc inc corp ltd co sa sas sarl gmbh ag plc llc bros "
    "jr sr vs resp tél etc.".split()
)
# Words that start a French sentence and reveal a missing break when glued to a lower-case word.
SENTENCE_STARTERS = frozenset(
    "Nous Vous Le La Les Il Elle Ils Elles Ce Cet Cette Ces Cela Mais Et En Dans Selon Pour Un Une "
    "Des On Son Sa Ses Leur Leurs Depuis Avec Après Avant Pourtant Ainsi Aujourd Alors Enfin "
    "Toutefois Cependant Par Sur Au Aux Du De Si Quand Lorsque Chez".split()
)
# A line ending in one of these words continues on the next line even before a capital.
CONTINUATION_WORDS = frozenset(
    "de du des le la les à au aux en et ou par pour avec chez sur dans un une l d que qui dont son sa ses".split()
)

_FINAL = re.compile(r"(?:\.{3}|…|[.!?])+(?:[ \u00a0\u202f]?[»\"”’)\]])*")
_NEXT_START = re.compile(r"\s+(?=[«\"“(\[—–-]?\s*[A-ZÀ-ÖØ-Þ0-9])")
_GLUED = re.compile(r"(?<=[a-zà-öø-ÿ]{3})(?=([A-ZÀ-ÖØ-Þ][a-zà-öø-ÿ]*)\b)")
_LIST_MARKER = re.compile(r"[ \t]*\d{1,3}\.")  # a whole line: « 2. »
_WORD_CHAR = re.compile(r"[\w.°-]")
_BLANKS = re.compile(r"[ \t]*")


@dataclass(frozen=True)
class Sentence:
    """A sentence as a slice ``article[start:end]`` (no surrounding whitespace)."""

    start: int
    end: int
    text: str


def split_sentences(text: str) -> list[Sentence]:
    """Split an article into sentences whose offsets slice back to the exact text."""
    cuts = sorted(set(_paragraph_cuts(text)) | set(_punctuation_cuts(text)) | set(_glued_cuts(text)))
    sentences = []
    start = 0
    for cut in [*cuts, len(text)]:
        sentences.extend(_trimmed(text, start, cut))
        start = cut
    return sentences


def _trimmed(text: str, start: int, end: int) -> list[Sentence]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return [Sentence(start, end, text[start:end])] if end > start else []


def _paragraph_cuts(text: str) -> list[int]:
    """Cut at blank lines, and at single line breaks unless the line was wrapped mid-sentence."""
    cuts = []
    for match in re.finditer(r"\n", text):
        # Only this line and the start of the next matter: slicing the whole article at each
        # line break would make long articles quadratic.
        line = text[text.rfind("\n", 0, match.start()) + 1 : match.start()].rstrip(" \t")
        next_start = _BLANKS.match(text, match.end()).end()
        if not line or next_start == len(text) or text[next_start] == "\n":
            cuts.append(match.end())
            continue
        first = text[next_start]
        last_word = re.split(r"[\s'’]", line)[-1].lower()
        wrapped = first.islower() or line.endswith((",", ";", "-")) or last_word in CONTINUATION_WORDS
        if not wrapped:
            cuts.append(match.end())
    return cuts


def _punctuation_cuts(text: str) -> list[int]:
    cuts = []
    for match in _FINAL.finditer(text):
        following = _NEXT_START.match(text, match.end())
        if following is None or not _is_final(text, match.start(), match.group()):
            continue
        cuts.append(match.end())
    return cuts


def _is_final(text: str, dot: int, punctuation: str) -> bool:
    """Whether the punctuation at ``dot`` ends a sentence (abbreviations, initials and list numbers don't)."""
    if punctuation[0] != ".":
        return True
    if punctuation.startswith("..."):
        return True
    word = _word_before(text, dot)
    bare = word.rstrip(".").lower()
    if bare.replace(".", "") in NEVER_FINAL or bare in NEVER_FINAL:
        return False
    if re.fullmatch(r"[A-Z](?:\.-?[A-Z])*", word):
        return False  # initials: « J. Smith », « J.-C. », « S.A. »
    return not _LIST_MARKER.fullmatch(text, text.rfind("\n", 0, dot) + 1, dot + 1)


def _word_before(text: str, end: int) -> str:
    """The run of word characters, periods, « ° » and hyphens that ends at ``end`` (before a line break there).

    Scanned backwards from ``end``: a regex search over ``text[:end]`` would rescan the
    article for every period.
    """
    if end and text[end - 1] == "\n":
        end -= 1
    start = end
    while start and _WORD_CHAR.match(text, start - 1):
        start -= 1
    return text[start:end]


def _glued_cuts(text: str) -> list[int]:
    return [m.start() for m in _GLUED.finditer(text) if m.group(1) in SENTENCE_STARTERS]
