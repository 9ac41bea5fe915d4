"""The joint model: one pretrained encoder, a BIO token head and a relation head over entity pairs.

Both heads read the same encoder states, so one forward pass per sentence serves
entities and relations. A candidate pair is represented by the states of the first
and last token of each argument, the mean state of the words between them (what
usually says which relation holds: « a rejoint », « passé par ») and an embedding
of each argument's entity type; with ``context_attention``, also a context pooled over
the whole sentence by a learnt attention whose query is the pair's arguments (after
ATLOP's localized context pooling), for the cue that a mean between the arguments misses
or dilutes: outside them (« Piloté par Salesforce Ventures, ce tour de table… », « les
départs s'enchaînent chez X : A, B et C »), or one verb among many words when the
arguments are far apart. The relation head is multi-label: one independent
sigmoid score per relation class, because several relations can hold between the same
two entities (« directeur général et cofondateur de Mistral AI » is EMPLOYEE_OF and
FOUNDED); a pair with no relation has every target at 0. Classes the schema forbids
for the pair's types are masked out of the scores and of the loss.

Which encoder states the relation head reads is the ``relation_encoder`` option:

- ``shared``: the states of the one pass that also gives the entities (no extra cost);
- ``markers``: typed entity markers, after PURE (Zhong & Chen, 2021): a second encoder
  pass over the sentence in which every candidate argument is marked with its type, so
  the encoder itself reads « [ORG] Mistral AI » and « [PER] Arthur Mensch » when it
  contextualises the words between them. The markers are learnt input embeddings added
  to the argument's tokens (one for its first token, one for the others, per entity
  type) instead of inserted marker tokens: windows, token positions and character
  offsets stay those of the first pass, and no word is added to the tokenizer. All the
  arguments of a sentence are marked in the same pass (PURE's batched approximation):
  one extra pass per sentence, not one per pair.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig

from .encoding import IGNORE

PairTensors = dict[str, torch.Tensor]
Encode = Callable[..., torch.Tensor]  # input_ids, attention_mask[, entity marks] → last hidden state
RELATION_ENCODERS = ("shared", "markers")
MAX_POOLED_ROWS = 65_536  # token states gathered at once by the between-max (pairs × widest gap): ~100 MB at H = 384
DISTANCE_BUCKETS = 9  # token gaps 0, 1, 2–3, 4–7, … 64–127, 128 and more
PAIR_KEYS = ("pair_sentence", "pair_spans", "pair_labels", "pair_allowed", "pair_targets")


@dataclass
class JointConfig:
    """What the heads need besides the encoder's own config (saved as ``joint_config.json``)."""

    bio_labels: list[str]
    entity_labels: list[str]
    relation_labels: list[str]
    max_length: int = 256
    stride: int = 64
    label_embedding_dim: int = 32
    dropout: float = 0.1
    relation_loss_weight: float = 1.0
    # Per relation label, the probability from which a relation is predicted, tuned on dev
    # by training; a label missing here uses the predictor's default.
    relation_thresholds: dict[str, float] = field(default_factory=dict)
    # What the relation head reads: the shared pass, or a second pass with typed entity markers.
    relation_encoder: str = "shared"
    # Whether the pair also reads an attention-pooled sentence context (see the module docstring).
    context_attention: bool = False
    # Whether the pair also reads the max over the words between its arguments (beside their mean).
    between_max: bool = False
    # Whether the pair also reads an embedding of its arguments' order and (log-bucketed) token distance.
    pair_distance: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


class JointModel(nn.Module):
    def __init__(self, config: JointConfig, encoder: nn.Module) -> None:
        super().__init__()
        check_max_length(config.max_length, encoder.config)
        if config.relation_encoder not in RELATION_ENCODERS:
            raise ValueError(f"unknown relation_encoder {config.relation_encoder!r} (choose from {', '.join(RELATION_ENCODERS)})")
        self.config = config
        self.encoder = encoder
        hidden = encoder.config.hidden_size
        self.dropout = nn.Dropout(config.dropout)
        self.token_head = nn.Linear(hidden, len(config.bio_labels))
        self.type_embedding = nn.Embedding(len(config.entity_labels), config.label_embedding_dim)
        pair_dim = (5 + config.context_attention + config.between_max) * hidden + (2 + config.pair_distance) * config.label_embedding_dim
        if config.pair_distance:
            self.distance_embedding = nn.Embedding(2 * DISTANCE_BUCKETS, config.label_embedding_dim)
        if config.context_attention:
            # The query is read from the two arguments' boundary states; the keys are the token states themselves (a bilinear score).
            self.context_query = nn.Linear(4 * hidden, hidden)
        self.relation_head = nn.Sequential(
            nn.Linear(pair_dim, hidden),
            nn.GELU(),
            nn.Dropout(config.dropout),
            nn.Linear(hidden, len(config.relation_labels)),
        )
        if self.marks_entities:
            # Row 0 (no entity) is zero, so an unmarked token embeds exactly as in the shared pass.
            self.entity_markers = nn.Embedding(1 + 2 * len(config.entity_labels), hidden, padding_idx=0)
            nn.init.normal_(self.entity_markers.weight, std=getattr(encoder.config, "initializer_range", 0.02))
            with torch.no_grad():
                self.entity_markers.weight[0].zero_()

    @classmethod
    def from_pretrained_encoder(cls, path: str, config: JointConfig) -> JointModel:
        """New heads on a pretrained encoder (training start)."""
        with _quiet_transformers():
            return cls(config, AutoModel.from_pretrained(path, **_pooler_kwargs(AutoConfig.from_pretrained(path))))

    @classmethod
    def from_encoder_config(cls, encoder_config: PretrainedConfig, config: JointConfig, empty_encoder: bool = False) -> JointModel:
        """Empty shell to load saved weights into (no download, no pretrained weights read).

        ``empty_encoder`` builds the encoder on the ``meta`` device (no memory, no random
        initialisation): for a runtime that brings its own encoder and needs only the heads.
        """
        with torch.device("meta") if empty_encoder else contextlib.nullcontext():
            encoder = AutoModel.from_config(encoder_config, **_pooler_kwargs(encoder_config))
        return cls(config, encoder)

    def head_parameters(self) -> list[nn.Parameter]:
        return [p for name, p in self.named_parameters() if not name.startswith("encoder.")]

    def sentence_states(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_index: torch.Tensor,
        max_windows: int | None = None,
        encode: Encode | None = None,
        marks: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Run the encoder once over all windows; return per-sentence token states [S, T, H].

        ``max_windows`` runs the windows through the encoder that many at a time, so that one
        very long sentence (hundreds of windows) costs no more activation memory than a batch.
        ``encode`` replaces this model's encoder (``input_ids``, ``attention_mask`` → last
        hidden state): another runtime running the same weights, such as ONNX Runtime.
        ``marks`` [W, L], the entity marker of each window token (see :meth:`entity_marks`).
        """
        encode = encode or self.encode
        step = max_windows or len(input_ids)
        hidden = torch.cat(
            [encode(input_ids[i : i + step], attention_mask[i : i + step], *([] if marks is None else [marks[i : i + step]])) for i in range(0, len(input_ids), step)]
        )
        flat = hidden.reshape(-1, hidden.shape[-1])
        return flat[token_index]

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, marks: torch.Tensor | None = None) -> torch.Tensor:
        """The encoder's last hidden state [W, L, H] of a batch of windows, with entity markers added to the input when given."""
        if marks is None:
            return self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        words = self.encoder.get_input_embeddings()(input_ids)
        return self.encoder(inputs_embeds=words + self.entity_markers(marks).to(words.dtype), attention_mask=attention_mask).last_hidden_state

    @property
    def marks_entities(self) -> bool:
        """Whether the relation head reads a second, entity-marked pass (``relation_encoder = "markers"``)."""
        return self.config.relation_encoder == "markers"

    def relation_states(
        self, states: torch.Tensor, batch: dict[str, torch.Tensor], pairs: PairTensors, max_windows: int | None = None, encode: Encode | None = None
    ) -> torch.Tensor:
        """The token states [S, T, H] the relation head reads for ``pairs``: ``states`` itself (shared), or the marked pass."""
        if not self.marks_entities:
            return states
        marks = entity_marks(batch["window_tokens"], states.shape[:2], pairs["pair_sentence"], pairs["pair_spans"], pairs["pair_labels"])
        return self.sentence_states(batch["input_ids"], batch["attention_mask"], batch["token_index"], max_windows, encode, marks)

    def token_logits(self, states: torch.Tensor, word_index: torch.Tensor) -> torch.Tensor:
        """BIO logits per word [S, N, labels], read at each word's first token."""
        words = torch.gather(states, 1, word_index.unsqueeze(-1).expand(-1, -1, states.shape[-1]))
        return self.token_head(self.dropout(words))

    def relation_logits(
        self, states: torch.Tensor, token_mask: torch.Tensor, pair_sentence: torch.Tensor, pair_spans: torch.Tensor, pair_labels: torch.Tensor, pair_allowed: torch.Tensor
    ) -> torch.Tensor:
        """One logit per relation class [P, relations] for candidate pairs; forbidden classes get a very low score.

        ``token_mask`` [S, T] says which positions of ``states`` are tokens of the sentence (not padding).
        """
        s = pair_sentence
        head_first, head_last, tail_first, tail_last = pair_spans.unbind(-1)
        arguments = [states[s, head_first], states[s, head_last], states[s, tail_first], states[s, tail_last]]
        start, end = torch.minimum(head_last, tail_last) + 1, torch.maximum(head_first, tail_first)
        between = [self._between(states, s, start, end)]
        if self.config.between_max:
            between.append(self._between_max(states, s, start, end))
        if self.config.context_attention:
            between.append(self._attended_context(states, token_mask, s, torch.cat(arguments, dim=-1)))
        types = [self.type_embedding(pair_labels[:, 0]), self.type_embedding(pair_labels[:, 1])]
        if self.config.pair_distance:
            types.append(self.distance_embedding(distance_bucket(end - start) * 2 + (head_first < tail_first)))
        features = torch.cat([*arguments, *between, *types], dim=-1)
        logits = self.relation_head(self.dropout(features))
        return logits.masked_fill(~pair_allowed, torch.finfo(logits.dtype).min / 2)

    def _attended_context(self, states: torch.Tensor, token_mask: torch.Tensor, sentence: torch.Tensor, arguments: torch.Tensor) -> torch.Tensor:
        """Each pair's own weighted mean of its sentence's token states [P, H], the weights an attention from its arguments.

        One sentence at a time: its pairs' scores cover its own real tokens only, so memory
        is pairs × tokens of one sentence, whatever else the batch holds. Softmax in float32.
        """
        hidden = states.shape[-1]
        query = self.context_query(arguments)
        context = torch.empty(len(sentence), hidden, dtype=states.dtype, device=states.device)
        for s in sentence.unique().tolist():
            pairs = (sentence == s).nonzero().squeeze(1)
            tokens = states[s, token_mask[s]]
            weights = (query[pairs] @ tokens.T).float().div(hidden**0.5).softmax(-1)
            context[pairs] = weights.to(states.dtype) @ tokens
        return context

    @staticmethod
    def _between(states: torch.Tensor, sentence: torch.Tensor, start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
        """Mean state of tokens [start, end) in each pair's sentence; zeros when the arguments touch.

        The prefix sums are taken in float32: in half precision their rounding error, which
        grows with the position, survives the difference (1–13 % in bfloat16).
        """
        cumulative = torch.cat([torch.zeros_like(states[:, :1]), states.cumsum(dim=1, dtype=torch.float32)], dim=1)
        end = torch.maximum(end, start)
        total = cumulative[sentence, end] - cumulative[sentence, start]
        return (total / (end - start).clamp(min=1).unsqueeze(-1)).to(states.dtype)

    @staticmethod
    def _between_max(states: torch.Tensor, sentence: torch.Tensor, start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
        """Element-wise max of the token states [start, end) of each pair's sentence [P, H]; zeros when the arguments touch.

        A max keeps one strong cue (« a quitté ») that a mean over a long stretch dilutes (SpERT
        pools its relation context the same way). Only the tokens between each pair's arguments
        are gathered (at most the widest gap, which the pair caps bound), a chunk of pairs at a
        time: memory stays bounded however long the sentence is.
        """
        pooled = torch.zeros(len(sentence), states.shape[-1], dtype=states.dtype, device=states.device)
        width = int((end - start).max()) if len(sentence) else 0
        if width <= 0:
            return pooled
        offsets = torch.arange(width, device=states.device)
        step = max(1, MAX_POOLED_ROWS // width)
        for i in range(0, len(sentence), step):
            positions = start[i : i + step, None] + offsets  # [p, width]
            inside = positions < end[i : i + step, None]
            values = states[sentence[i : i + step, None], positions.clamp(max=states.shape[1] - 1)]  # [p, width, H]
            values = values.masked_fill(~inside.unsqueeze(-1), torch.finfo(states.dtype).min)
            pooled[i : i + step] = torch.where(inside.any(1, keepdim=True), values.amax(1), 0)
        return pooled

    def forward(self, batch: dict[str, torch.Tensor], extra_pairs: Callable[[torch.Tensor], PairTensors] | None = None) -> dict[str, torch.Tensor]:
        """Training/evaluation pass over the batch's candidate pairs; returns logits and, with targets, the loss.

        ``extra_pairs`` maps the batch's word probabilities (computed here, without gradient)
        to more candidate pairs for the relation loss: the pairs of the entities the token
        head itself predicts (see :mod:`veille.models.predicted_pairs`).
        """
        states = self.sentence_states(batch["input_ids"], batch["attention_mask"], batch["token_index"])
        out = {"token_logits": self.token_logits(states, batch["word_index"])}
        if extra_pairs is not None:
            with torch.no_grad():
                added = extra_pairs(out["token_logits"].detach().float().softmax(-1).cpu())
            batch = {**batch, **{k: torch.cat([batch[k], added[k].to(batch[k].device)]) for k in PAIR_KEYS}}
        has_pairs = batch["pair_sentence"].numel() > 0
        if has_pairs:
            pair_states = self.relation_states(states, batch, batch)
            out["relation_logits"] = self.relation_logits(pair_states, batch["token_mask"], batch["pair_sentence"], batch["pair_spans"], batch["pair_labels"], batch["pair_allowed"])
        if "word_labels" in batch:
            logits = out["token_logits"]
            loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), batch["word_labels"].reshape(-1), ignore_index=IGNORE)
            if has_pairs and "pair_targets" in batch:
                loss = loss + self.config.relation_loss_weight * relation_loss(out["relation_logits"], batch["pair_targets"], batch["pair_allowed"])
            out["loss"] = loss
        return out


def distance_bucket(gap: torch.Tensor) -> torch.Tensor:
    """Log-scale bucket of a token gap: 0 → 0, 1 → 1, 2–3 → 2, 4–7 → 3 … capped at ``DISTANCE_BUCKETS - 1``."""
    gap = gap.clamp(min=0)
    return torch.where(gap == 0, 0, torch.floor(torch.log2(gap.clamp(min=1).float())).long() + 1).clamp(max=DISTANCE_BUCKETS - 1)


def entity_marks(window_tokens: torch.Tensor, sentence_shape: torch.Size, pair_sentence: torch.Tensor, pair_spans: torch.Tensor, pair_labels: torch.Tensor) -> torch.Tensor:
    """The marker of every window token [W, L]: 0 outside the pairs' arguments, ``1 + 2 × type`` on an
    argument's first token and ``2 + 2 × type`` on its other tokens.

    ``window_tokens`` [W, L] holds, for each window position, its token's flat index into
    the batch's sentences (``sentence × T + token``, ``sentence_shape`` = [S, T]), or -1 for a
    special or padding token; a token in two overlapping windows is marked in both. Where
    two arguments overlap (a predicted span across a gold one), the argument of the earlier
    pair keeps its marks: gold pairs come first in a training batch.
    """
    sentences, tokens = sentence_shape
    marks = torch.zeros(sentences * tokens, dtype=torch.long)
    arguments = torch.cat([
        torch.stack([pair_sentence, pair_spans[:, 0], pair_spans[:, 1], pair_labels[:, 0]], dim=1),
        torch.stack([pair_sentence, pair_spans[:, 2], pair_spans[:, 3], pair_labels[:, 1]], dim=1),
    ], dim=1).view(-1, 4).tolist()  # head, tail of pair 0, head, tail of pair 1…
    for sentence, first, last, label in reversed(list(dict.fromkeys(map(tuple, arguments)))):
        row = sentence * tokens
        marks[row + first + 1 : row + last + 1] = 2 + 2 * label
        marks[row + first] = 1 + 2 * label
    marks = marks.to(window_tokens.device)
    return torch.where(window_tokens >= 0, marks[window_tokens.clamp(min=0)], 0)


def relation_loss(logits: torch.Tensor, targets: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of every allowed (pair, class), summed per pair and averaged over pairs.

    Summing over classes keeps the scale of the former softmax loss (one term per pair);
    forbidden classes are left out, so the schema's constraints cost nothing to learn.
    """
    losses = nn.functional.binary_cross_entropy_with_logits(logits.float(), targets.float(), reduction="none")
    return (losses * allowed).sum() / max(logits.shape[0], 1)


def position_limit(encoder_config: PretrainedConfig) -> int | None:
    """The longest input (special tokens included) the encoder's position embeddings cover; None if unbounded.

    RoBERTa-style encoders (CamemBERT, XLM-R) number positions from ``pad_token_id + 1``,
    so 514 embeddings hold 512 tokens.
    """
    positions = getattr(encoder_config, "max_position_embeddings", None)
    if positions is None:
        return None
    if encoder_config.model_type in _ROBERTA_POSITIONS:
        return positions - (encoder_config.pad_token_id or 0) - 1
    return positions


def check_max_length(max_length: int, encoder_config: PretrainedConfig) -> None:
    """Refuse a window the encoder cannot embed, when the model is built rather than at serving time."""
    limit = position_limit(encoder_config)
    if limit is not None and max_length > limit:
        raise ValueError(
            f"max_length {max_length} exceeds the encoder's position limit of {limit} tokens "
            f"({encoder_config.model_type}, max_position_embeddings={encoder_config.max_position_embeddings}); use --max-length {limit} or less"
        )


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence transformers while it loads an encoder: its weight-loading bar and load report
    (the unused pooler weights listed as UNEXPECTED, with raw colour codes in logs) tell a
    veille user nothing; real errors still raise."""
    from transformers.utils import logging

    level, bars = logging.get_verbosity(), logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(level)
        if bars:
            logging.enable_progress_bar()


def _pooler_kwargs(encoder_config: PretrainedConfig) -> dict:
    """BERT-like encoders get no pooling layer: the heads never use it, and it would warn as unused."""
    return {"add_pooling_layer": False} if encoder_config.model_type in _WITH_POOLER else {}


_WITH_POOLER = {"bert", "roberta", "camembert", "xlm-roberta"}
_ROBERTA_POSITIONS = {"roberta", "camembert", "xlm-roberta"}
