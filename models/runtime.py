"""The encoder exported to ONNX, and run with ONNX Runtime behind the one :class:`Predictor`.

Most batch inference runs on CPUs, where the encoder is over 80 % of the time; ONNX
Runtime runs it faster than eager torch, and its int8 dynamic quantization of the linear
layers faster still. Only the encoder goes to ONNX: the token head is one linear layer
and the relation head a small MLP over gathered pair features (index arithmetic that
changes with every sentence), both a few percent of the time, so they stay in torch,
in float32, for both runtimes. Windows, decoding, thresholds and outputs are then the
same code whichever runtime computed the token states.

An export lives in ``MODEL_DIR/onnx/`` (``model.onnx``, float32, and ``model.int8.onnx``
with ``--int8``) and carries, in its ONNX metadata, the version of the weights it was
exported from: a model trained again into the same directory leaves a stale export,
which is refused (``--runtime onnx``) or passed over with a warning (``--runtime auto``).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from .checkpoint import CheckpointError, LoadedModel, load_model, saved_version
from .devices import resolve_device

RUNTIMES = ("auto", "torch", "onnx")
EXPORT_DIR = "onnx"
FILES = {"float32": "model.onnx", "int8": "model.int8.onnx"}  # precision → file name in EXPORT_DIR
VERSION_KEY = "veille_model_version"  # ONNX metadata: the model_version of the weights exported
PRECISION_KEY = "veille_precision"
MARKS_INPUT = "entity_marks"  # the extra input of a relation_encoder = "markers" model (models/joint.py)
INSTALL = "pip install 'veille[onnx]'"
OPSET = 17
PARITY_ATOL = 1e-3  # token states of the float32 export against torch's, checked at export
PROBES = ["Arthur Mensch dirige Mistral AI à Paris.", "Meta a investi 14,3 milliards de dollars dans Scale AI en juin 2025, selon Reuters."]
# The linear layers int8 leaves in float32, as patterns of the exported node names (BERT,
# RoBERTa, CamemBERT, XLM-R module names): the feed-forward blocks, whose inputs (after GELU)
# have the outliers per-tensor activation quantization handles worst. Measured on dev with
# the offline model: every linear layer in int8 lost 0.9 entity and 2.2 relation F1 points,
# the feed-forward blocks kept in float 0.2 and 0.7; leaving the attention projections or the
# last two layers in float instead helped little (README, "ONNX Runtime and int8").
KEEP_FLOAT = (r"layer\.\d+/intermediate/dense/", r"layer\.\d+/output/dense/")


class OnnxUnavailable(CheckpointError):
    """onnxruntime or onnx is not installed, or the encoder's architecture does not export."""


def require(module: str) -> Any:
    """Import ``onnx`` or ``onnxruntime``, or say how to install them (they are an extra)."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise OnnxUnavailable(f"the ONNX runtime needs the {module} package: {INSTALL}") from None


def export_path(model_dir: str | Path, precision: str = "float32") -> Path:
    return Path(model_dir) / EXPORT_DIR / FILES[precision]


def choose_runtime(runtime: str, model_dir: str | Path, device: str, dtype: str | None, threads: int | None) -> OnnxEncoder | None:
    """The ONNX encoder a predictor runs, or None for the model's torch encoder.

    ``onnx``: the export of precision ``dtype`` (None: int8 when there is an int8 export,
    else float32), on CPU; refused when missing, stale or without onnxruntime. ``auto``:
    the same on CPU when an export is present, else torch; an export it cannot use (stale,
    onnxruntime not installed) is passed over with a warning, never silently.
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r} (choose from {', '.join(RUNTIMES)})")
    if runtime == "torch" or (runtime == "auto" and (resolve_device(device).type != "cpu" or dtype not in (None, *FILES))):
        if dtype == "int8":
            raise ValueError(f"--dtype int8 runs on the ONNX runtime only: `veille export onnx {model_dir} --int8`, then --runtime onnx")
        return None
    if device not in ("auto", "cpu"):
        raise ValueError(f"the ONNX runtime runs on the CPU only (device {device!r}): use --device cpu, or --runtime torch")
    if dtype not in (None, *FILES):
        raise ValueError(f"the ONNX runtime runs the {' or '.join(FILES)} export, not {dtype}: use --dtype {' or --dtype '.join(FILES)}, or --runtime torch")
    path = export_path(model_dir, dtype or ("int8" if export_path(model_dir, "int8").is_file() else "float32"))
    if runtime == "auto" and not path.is_file():
        return None
    try:
        return OnnxEncoder(path, saved_version(model_dir), threads)
    except CheckpointError as exc:
        if runtime != "auto":
            raise
        from veille.annotation.console import warning

        warning(f"{exc}; running the torch encoder instead", tag="runtime")
        return None


def export_onnx(model_dir: str | Path, int8: bool = False) -> list[Path]:
    """Export the model's encoder to ``MODEL_DIR/onnx/`` (float32, and int8 when asked); return the files written.

    The float32 graph is checked against torch on a few sentences before anything is
    written; files are built aside and renamed into place, and an int8 file not asked for
    this time is removed (it would come from an older export).
    """
    require("onnx")
    require("onnxruntime")
    loaded = load_model(model_dir)
    out = Path(model_dir) / EXPORT_DIR
    out.mkdir(exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=out))
    try:
        written = {"float32": staging / FILES["float32"]}
        _export_encoder(loaded, written["float32"])
        _stamp(written["float32"], loaded.version, "float32")
        _check_parity(loaded, written["float32"])
        if int8:
            written["int8"] = staging / FILES["int8"]
            _quantize(written["float32"], written["int8"])
            _stamp(written["int8"], loaded.version, "int8")
        for precision, name in FILES.items():
            if precision in written:
                os.replace(written[precision], out / name)
            else:
                (out / name).unlink(missing_ok=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [out / FILES[precision] for precision in written]


class _LastHiddenState(torch.nn.Module):
    """The joint model's encoder pass with tensors in and out, as the ONNX graph computes it
    (with the entity-marker input of a ``markers`` model, all zeros for its first pass)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, *marks: torch.Tensor) -> torch.Tensor:
        return self.model.encode(input_ids, attention_mask, *marks)


def _export_encoder(loaded: LoadedModel, path: Path) -> None:
    """Trace the encoder into ``path`` with dynamic batch and sequence axes.

    The TorchScript exporter (``dynamo=False``) is used: it needs no onnxscript, and its
    BERT-style graphs are the ones ONNX Runtime's optimiser fuses.
    """
    import warnings

    probe = loaded.tokenizer(PROBES, padding=True, return_tensors="pt")
    inputs = {"input_ids": probe["input_ids"], "attention_mask": probe["attention_mask"]}
    inputs.update({MARKS_INPUT: marks for marks in _probe_marks(loaded, probe)})
    axes = {0: "windows", 1: "tokens"}
    try:
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")  # tracer warnings about Python branches on shapes, which are constant here
            torch.onnx.export(
                _LastHiddenState(loaded.model).eval(), tuple(inputs.values()), str(path),
                input_names=list(inputs), output_names=["last_hidden_state"],
                dynamic_axes={**{name: axes for name in inputs}, "last_hidden_state": axes}, opset_version=OPSET, dynamo=False,
            )
    except Exception as exc:  # the exporter raises many kinds; any of them means this architecture does not export
        raise OnnxUnavailable(
            f"the {loaded.model.encoder.config.model_type} encoder of {loaded.name} cannot be exported to ONNX ({type(exc).__name__}: {exc}); keep --runtime torch"
        ) from exc


def _check_parity(loaded: LoadedModel, path: Path) -> None:
    """Refuse an export whose token states differ from torch's (an architecture the tracer gets wrong)."""
    probe = loaded.tokenizer(PROBES[::-1], padding=True, return_tensors="pt")  # other shapes than the traced ones
    marks = _probe_marks(loaded, probe)
    with torch.inference_mode():
        expected = loaded.model.encode(probe["input_ids"], probe["attention_mask"], *marks)
    got = OnnxEncoder(path, loaded.version, threads=None)(probe["input_ids"], probe["attention_mask"], *marks)
    mask = probe["attention_mask"].bool()
    gap = float((got - expected)[mask].abs().max())
    if gap > PARITY_ATOL:
        raise OnnxUnavailable(
            f"the ONNX export of the {loaded.model.encoder.config.model_type} encoder of {loaded.name} differs from torch by {gap:.2g}; keep --runtime torch"
        )


def _probe_marks(loaded: LoadedModel, probe: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """Entity marks for the probe sentences of a ``markers`` model (any values: they must be traced and
    checked, not folded as constants); none for a ``shared`` model, whose graph has no such input."""
    if not loaded.model.marks_entities:
        return []
    mask = probe["attention_mask"]
    return [(mask * torch.arange(mask.shape[1])) % 3]


def _quantize(source: Path, target: Path) -> None:
    """Dynamic int8 quantization of the encoder's linear layers (MatMul with a weight), per channel."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    import onnx

    graph = onnx.load(str(source), load_external_data=False).graph
    keep = [node.name for node in graph.node if node.op_type == "MatMul" and any(re.search(pattern, node.name) for pattern in KEEP_FLOAT)]
    logging.disable(logging.WARNING)  # the quantizer's advice on the root logger to pre-process image models, every time
    try:
        quantize_dynamic(source, target, op_types_to_quantize=["MatMul"], per_channel=True, weight_type=QuantType.QInt8, nodes_to_exclude=keep)
    finally:
        logging.disable(logging.NOTSET)


def _stamp(path: Path, version: str, precision: str) -> None:
    """Write the weights' version and the precision into the ONNX file's metadata."""
    import onnx

    model = onnx.load(str(path))
    for key, value in ((VERSION_KEY, version), (PRECISION_KEY, precision)):
        entry = next((p for p in model.metadata_props if p.key == key), None) or model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))


class OnnxEncoder:
    """The encoder's forward pass (``input_ids``, ``attention_mask`` → last hidden state) in ONNX Runtime.

    The session is built once, with its options (threads, full graph optimisation); a
    file exported from other weights than ``version`` is refused.
    """

    def __init__(self, path: Path, version: str, threads: int | None) -> None:
        ort = require("onnxruntime")
        if not path.is_file():
            raise CheckpointError(f"{path}: no ONNX export; run `veille export onnx {path.parent.parent}{' --int8' if path.name == FILES['int8'] else ''}`")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or 0  # 0: ONNX Runtime's default, one per physical core
        options.inter_op_num_threads = 1  # one graph at a time: its operators run in sequence
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's own exception types (Fail, InvalidProtobuf…) derive from Exception only
            raise CheckpointError(f"{path}: ONNX Runtime cannot load it ({exc}); run `veille export onnx {path.parent.parent}` again") from None
        metadata = self.session.get_modelmeta().custom_metadata_map
        exported = metadata.get(VERSION_KEY)
        if exported != version:
            raise CheckpointError(
                f"{path} was exported from weights version {exported} but the model is version {version} (trained again since): "
                f"run `veille export onnx {path.parent.parent}` again, or use --runtime torch"
            )
        self.dtype = metadata.get(PRECISION_KEY, "float32")
        self.takes_marks = MARKS_INPUT in {i.name for i in self.session.get_inputs()}

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, marks: torch.Tensor | None = None) -> torch.Tensor:
        feed = {"input_ids": input_ids.cpu().numpy(), "attention_mask": attention_mask.cpu().numpy()}
        if self.takes_marks:  # a markers model: its first pass marks nothing
            feed[MARKS_INPUT] = (marks if marks is not None else torch.zeros_like(input_ids)).cpu().numpy()
        return torch.from_numpy(self.session.run(None, feed)[0])
