"""`ClosedOnExit`: the `with` protocol for the store's handles, written once.

Owns: `__enter__` returning the handle and `__exit__` calling its `close()`, for every
writer, reader and lock of `store/` (five classes carried the same twelve lines).

Never: hold state or decide what closing means; each class's own `close()` does.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self


class ClosedOnExit(ABC):
    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
