"""Which child a process is: the writer, or the decoder in one slot.

Owns: `ChildId`, the small typed identity of a child of the tree, and its `name` ("writer",
"decoder-<slot>"), the one spelling that logs, metric labels and the supervisor's tables use.

Never: be parsed back from its name, or stand for an incarnation (a restarted child keeps its
identity; the supervisor numbers incarnations itself).
"""

from __future__ import annotations

from dataclasses import dataclass

WRITER_ROLE = "writer"
DECODER_ROLE = "decoder"


@dataclass(frozen=True, slots=True)
class ChildId:
    role: str  # WRITER_ROLE or DECODER_ROLE
    slot: int = 0  # a decoder's slot; 0 for the writer, of which there is one

    @classmethod
    def writer(cls) -> ChildId:
        return cls(WRITER_ROLE)

    @classmethod
    def decoder(cls, slot: int) -> ChildId:
        return cls(DECODER_ROLE, slot)

    @property
    def is_writer(self) -> bool:
        return self.role == WRITER_ROLE

    @property
    def name(self) -> str:
        return WRITER_ROLE if self.is_writer else f"{DECODER_ROLE}-{self.slot}"

    def __str__(self) -> str:
        return self.name


WRITER = ChildId.writer()
