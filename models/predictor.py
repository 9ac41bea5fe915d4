"""The one inference object behind the CLI, the HTTP API, evaluation and the tests.

Each sentence goes through the encoder once (in windows when it is longer than the
model's maximum length); the token head gives entities, then the relation head scores
the candidate pairs of those entities from the same encoder states, or, for a model
trained with ``relation_encoder = "markers"``, from a second pass in which those
entities are marked (:mod:`veille.models.joint`). A relation is kept
when its probability reaches its label's threshold: the one tuned on dev by training
(saved in ``joint_config.json``), or one value for every label when the caller gives it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from veille.annotation.document import Example
from veille.annotation.schema import Schema

from .batch import Collator, Pair, pair_tensors
from .checkpoint import LoadedModel, load_model
from .devices import DTYPES, inference_dtype, resolve_device
from .runtime import OnnxEncoder, choose_runtime
from .decoding import build_pairs, decode_entities, decode_relations, pair_entities
from .encoding import Encoded, encode, entity_token_range

PAIR_BUCKET = 256
DEFAULT_RELATION_THRESHOLD = 0.5  # for a relation label the model has no tuned threshold for
PAIR_CHUNK = 8 * PAIR_BUCKET  # pairs per relation-head call


@dataclass(frozen=True)
class Margins:
    """How sure the model was of one sentence: 0 is a coin toss, 1 is certainty.

    ``words``: for each word, the probability of its best BIO tag minus that of the second.
    ``pairs``: for each candidate entity pair, how far the best score among its allowed
    relation labels lies from that label's threshold, as a share of the way to 0 (below
    it) or to 1 (above it), so labels with different thresholds compare.
    """

    words: list[float]
    pairs: list[float]

    @property
    def lowest(self) -> float:
        """The sentence's margin: its least certain decision (1.0 when it has none)."""
        return min(self.words + self.pairs, default=1.0)


def threshold_margins(probs: torch.Tensor, allowed: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """Per pair [P], the margin of its best allowed label's probability to that label's threshold, in [0, 1]."""
    best, label = probs.masked_fill(~allowed, -1.0).max(dim=-1)
    threshold = thresholds[label]
    room = torch.where(best >= threshold, 1.0 - threshold, threshold).clamp_min(1e-6)
    return ((best - threshold).abs() / room).clamp(0.0, 1.0)


class Predictor:
    schema: Schema
    model_name: str
    model_version: str
    device: torch.device

    def __init__(self, loaded: LoadedModel, device: torch.device, encoder: OnnxEncoder | None = None) -> None:
        """``encoder`` runs the encoder instead of the model's own torch one (the ONNX runtime)."""
        self.loaded = loaded
        self.encoder = encoder
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self.schema = loaded.schema
        self.model_name = loaded.name
        self.model_version = loaded.version
        self.device = device
        config = loaded.model.config
        self.collate = Collator(self.tokenizer, config.max_length, config.stride)

    @classmethod
    def load(cls, model_dir: str | Path, device: str = "auto", dtype: str | None = None, runtime: str = "auto", threads: int | None = None) -> Predictor:
        """Load a model directory (see :mod:`veille.models.checkpoint`) for inference.

        ``runtime`` torch, onnx (the export in ``MODEL_DIR/onnx/``, on CPU) or auto (see
        :func:`veille.models.runtime.choose_runtime`). ``dtype`` None follows the one
        precision policy of :mod:`veille.models.devices` (torch), or takes the int8 export
        when there is one (onnx). ``threads`` caps the CPU threads of both runtimes.
        """
        if threads:
            torch.set_num_threads(threads)
        encoder = choose_runtime(runtime, model_dir, device, dtype, threads)
        if encoder is not None:
            return cls(load_model(model_dir, encoder_weights=False), torch.device("cpu"), encoder)
        target = resolve_device(device)
        precision = inference_dtype(target, dtype)
        loaded = load_model(model_dir)
        loaded.model.to(device=target, dtype=DTYPES[precision])
        return cls(loaded, target)

    @staticmethod
    def check(model_dir: str | Path, runtime: str = "auto") -> None:
        """Refuse what :meth:`load` on the CPU refuses, without reading the encoder's weights.

        For a driver that leaves the loading to its workers (``--engine ray``): a bad
        directory, a stale export or a truncated weights file still stops the job before
        any worker starts, and the driver neither reads nor holds the encoder (seconds and
        hundreds of MB). What only a full read finds (NaN in the encoder's weights) is
        refused by each worker's own :meth:`load`.
        """
        choose_runtime(runtime, model_dir, "cpu", None, threads=1)
        load_model(model_dir, encoder_weights=False)

    @property
    def runtime(self) -> str:
        """What runs the encoder: ``torch`` or ``onnx``."""
        return "torch" if self.encoder is None else "onnx"

    @property
    def dtype(self) -> str:
        """The precision the encoder runs at (``float32``, ``bfloat16``, ``int8``…)."""
        if self.encoder is not None:
            return self.encoder.dtype
        return str(next(self.model.parameters()).dtype).removeprefix("torch.")

    @property
    def relation_thresholds(self) -> dict[str, float]:
        """The threshold of each relation label: tuned by training, else :data:`DEFAULT_RELATION_THRESHOLD`."""
        tuned = self.model.config.relation_thresholds
        return {label: tuned.get(label, DEFAULT_RELATION_THRESHOLD) for label in self.schema.relation_labels}

    def predict(self, sentences: list[str], batch_size: int = 32, relation_threshold: float | None = None, min_entity_score: float = 0.0) -> list[Example]:
        """One Example per sentence, offsets into that sentence, Entity.score / Relation.score set.

        ``relation_threshold`` None uses each label's threshold; a value overrides them all.
        """
        return [example for example, _ in self.predict_with_margins(sentences, batch_size, relation_threshold, min_entity_score)]

    @torch.inference_mode()
    def predict_with_margins(
        self, sentences: list[str], batch_size: int = 32, relation_threshold: float | None = None, min_entity_score: float = 0.0
    ) -> list[tuple[Example, Margins]]:
        """:meth:`predict`, each sentence with how sure the model was of it (:class:`Margins`).

        Active learning (``veille annotate suggest``) ranks sentences by these margins; they
        come from the same forward pass, so measuring them costs no second prediction.
        """
        results: list[tuple[Example, Margins] | None] = [None] * len(sentences)
        for indices, encoded, states, batch in self._batches(sentences, batch_size):
            word_probs = self.model.token_logits(states, batch["word_index"]).float().softmax(-1).cpu()
            top2 = word_probs.topk(2, dim=-1).values
            word_margins = (top2[..., 0] - top2[..., 1]).tolist()
            examples = []
            for row, (i, enc) in enumerate(zip(indices, encoded)):
                entities = decode_entities(word_probs[row, : len(enc.words)], enc.words, sentences[i], self.model.config.bio_labels, min_entity_score)
                examples.append(Example(str(i), sentences[i], entities))
            pair_margins = self._add_relations(examples, encoded, states, batch, batch_size, relation_threshold)
            for row, (i, example) in enumerate(zip(indices, examples)):
                results[i] = (example, Margins(word_margins[row][: len(encoded[row].words)], pair_margins[row]))
        self._sound([example for example, _ in results])  # type: ignore[misc]
        return results  # type: ignore[return-value]

    @torch.inference_mode()
    def predict_relations(self, examples: list[Example], batch_size: int = 32, relation_threshold: float | None = None) -> list[Example]:
        """Relations between the given (gold) entities: the relation head scored on its own."""
        results: list[Example | None] = [None] * len(examples)
        texts = [e.text for e in examples]
        for indices, encoded, states, batch in self._batches(texts, batch_size):
            batch_examples = [Example(examples[i].id, examples[i].text, list(examples[i].entities), [], dict(examples[i].meta)) for i in indices]
            self._add_relations(batch_examples, encoded, states, batch, batch_size, relation_threshold)
            for i, example in zip(indices, batch_examples):
                results[i] = example
        return self._sound(results)  # type: ignore[arg-type]

    def _sound(self, examples: list[Example]) -> list[Example]:
        """Drop what the heads must never output, whatever their scores: a non-finite score, which no
        JSON output may hold (half-precision overflow, corrupt weights), and a relation whose argument
        types the schema forbids."""
        for example in examples:
            example.entities = [e for e in example.entities if e.score is None or math.isfinite(e.score)]
            labels = {e.id: e.label for e in example.entities}
            example.relations = [
                r
                for r in example.relations
                if (r.score is None or math.isfinite(r.score))
                and r.head in labels
                and r.tail in labels
                and self.schema.relation(r.label).allows(labels[r.head], labels[r.tail])
            ]
        return examples

    def _batches(self, texts: list[str], batch_size: int) -> Iterator[tuple[list[int], list[Encoded], torch.Tensor, dict]]:
        """Length-sorted batches (less padding), each run through the encoder once."""
        encoded = [encode(self.tokenizer, text) for text in texts]
        order = sorted(range(len(texts)), key=lambda i: len(encoded[i].input_ids))
        for start in range(0, len(order), batch_size):
            indices = order[start : start + batch_size]
            batch = {k: v.to(self.device) for k, v in self.collate([encoded[i] for i in indices]).items()}
            states = self.model.sentence_states(batch["input_ids"], batch["attention_mask"], batch["token_index"], max_windows=batch_size, encode=self.encoder)
            yield indices, [encoded[i] for i in indices], states, batch

    def _add_relations(
        self, examples: list[Example], encoded: list[Encoded], states: torch.Tensor, batch: dict[str, torch.Tensor], batch_size: int, threshold: float | None
    ) -> list[list[float]]:
        """Set each example's relations; return, per example, the margin of each candidate pair (see :class:`Margins`).

        ``states`` and ``batch`` are the batch's first pass; a markers model runs its second,
        marked pass here, once for all the batch's pairs, ``batch_size`` windows at a time.
        """
        thresholds = [threshold if threshold is not None else self.relation_thresholds[label] for label in self.schema.relation_labels]
        pairs, arguments = [], []
        for row, (example, enc) in enumerate(zip(examples, encoded)):
            ranges = [entity_token_range(enc, entity) for entity in example.entities]
            pairs.extend(build_pairs(example.entities, ranges, self.schema, row))
            arguments.append(pair_entities(example.entities, self.schema))
        if not pairs:
            return [[] for _ in examples]
        if self.model.marks_entities:  # the second pass marks every argument of the batch's pairs
            marked = {k: v.to(self.device) for k, v in pair_tensors(pairs, len(self.schema.relation_labels)).items()}
            states = self.model.relation_states(states, batch, marked, max_windows=batch_size, encode=self.encoder)
        probs = self._relation_logits(states, batch["token_mask"], pairs).sigmoid()
        margins = threshold_margins(probs, torch.tensor([pair.allowed for pair in pairs]), torch.tensor(thresholds)).tolist()
        offset, per_example = 0, []
        for example, pair_args in zip(examples, arguments):
            example.relations = decode_relations(probs[offset : offset + len(pair_args)], pair_args, self.schema, thresholds)
            per_example.append(margins[offset : offset + len(pair_args)])
            offset += len(pair_args)
        return per_example

    def _relation_logits(self, states: torch.Tensor, token_mask: torch.Tensor, pairs: list[Pair]) -> torch.Tensor:
        """Relation logits [P, classes] (float32, CPU), ``PAIR_CHUNK`` pairs per head call.

        The head's activations (five token states per pair, six with the attended context) are the largest tensors of a
        long sentence; in chunks they stay the same size whatever the number of pairs.
        Each chunk is padded to a multiple of ``PAIR_BUCKET``: tensors of a few recurring
        shapes let the allocator reuse its blocks, so memory stays flat over long runs.
        """
        chunks = []
        for start in range(0, len(pairs), PAIR_CHUNK):
            chunk = pairs[start : start + PAIR_CHUNK]
            padded = chunk + [chunk[-1]] * (-len(chunk) % PAIR_BUCKET)
            tensors = {k: v.to(self.device) for k, v in pair_tensors(padded, len(self.schema.relation_labels)).items()}
            logits = self.model.relation_logits(states, token_mask, tensors["pair_sentence"], tensors["pair_spans"], tensors["pair_labels"], tensors["pair_allowed"])
            chunks.append(logits[: len(chunk)].float().cpu())
        return torch.cat(chunks)
