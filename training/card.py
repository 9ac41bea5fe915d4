"""The model card (README.md of a model directory): data, scores per label, limits, time and hardware."""

from __future__ import annotations

from typing import Any

from veille.annotation.schema import Schema

from .report import markdown_tables


def model_card(metrics: dict[str, Any], schema: Schema, config: dict[str, Any]) -> str:
    data = metrics["data"]
    history = metrics.get("history", [])
    per_epoch = metrics["train_time_s"] / len(history) if history else 0.0
    return f"""# veille model: entities and relations in French tech news

Fine-tuned from `{metrics['base_model']}` by `veille train` on the annotation schema
`{schema.name}` v{schema.version} ({len(schema.entity_labels)} entity labels, {len(schema.relation_labels)} relations).

```python
from veille.models.predictor import Predictor
predictor = Predictor.load("path/to/this/directory")
predictor.predict(["Alexandr Wang, PDG de Scale AI, rejoint Meta."])
```

## Data

- train: {_files(data['train_files'])} — {data['train_sentences']} sentences
- dev (model selection): {_files(data['dev_files'])} — {data['dev_sentences']} sentences

## Scores on dev (best epoch {metrics['best_epoch']})

{markdown_tables(metrics['dev']) if metrics['dev'] else 'No evaluation recorded.'}
![per-label F1](per_label_f1.png) ![training curves](training_curves.png)

## Training

- {len(history)} epoch(s), {metrics['train_time_s']:.0f} s of training ({per_epoch:.1f} s per epoch, {metrics['sentences_per_s']:.1f} sentences/s) on {metrics['hardware']}
- batch size {config['batch_size']} × accumulation {config['grad_accum']}, learning rates {config['lr_encoder']} (encoder) / {config['lr_heads']} (heads), max length {config['max_length']} tokens, seed {config['seed']}{', frozen word embeddings' if config['freeze_embeddings'] else ''}
- relation thresholds, tuned per label on dev: {_thresholds(metrics['dev'])}
- full configuration: `training_config.json`; metrics per epoch: `metrics.json`

## Limits

- Trained on a small, hand-authored corpus of French tech/AI business news; expect lower scores on other domains and registers.
- Relations are predicted only within one sentence and only between entities the model found: an entity error costs its relations too.
- Dev scores select the checkpoint, so they are optimistic; use `veille evaluate` on the held-out test split for an unbiased figure.
- Entities are flat (no nesting); spans never start with an elision (« d'OpenAI » → « OpenAI »).
"""


def _files(records: list[dict[str, str]]) -> str:
    """Data files as the card names them: portable path and a short checksum."""
    return ", ".join(f"`{r['file']}` (sha256 {r['sha256'][:12]})" for r in records)


def _thresholds(dev: dict[str, Any]) -> str:
    tuned = dev.get("relation_thresholds", {})
    return ", ".join(f"{label} {value:.2f}" for label, value in tuned.items()) or "none"
