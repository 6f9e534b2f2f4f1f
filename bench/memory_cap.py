"""A memory cap for benchmark processes: a table larger than the memory that caches it.

Owns: one memory cgroup (v2 where the unified hierarchy has the memory controller, else v1's
memory hierarchy) with a byte limit; moving processes into it (a PostgreSQL server with all
its processes: backends it forks later are born inside) and back out; emptying the kernel's
page cache before a measurement (so that pages cached earlier, charged elsewhere, do not
serve reads); and removing the cgroup. Page cache counts against a cgroup's limit, so a
process inside reads its table from the disk once the table outgrows the cap: what a
machine whose memory is a fraction of the table sees.

Never: cap a process it was not given, or fail silently: without root or a memory
controller it raises MemoryCapUnavailable with what is missing.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
DROP_CACHES = Path("/proc/sys/vm/drop_caches")


class MemoryCapUnavailable(Exception):
    """This machine cannot cap memory here (no root, no memory controller)."""


class MemoryCap:
    def __init__(self, limit_bytes: int, name: str = f"miniscan-bench-{os.getpid()}") -> None:
        unified = CGROUP_ROOT / "cgroup.controllers"
        # The limit, then the limit on memory and swap together (where swap is accounted): a
        # capped process must not keep its pages by swapping them out.
        if unified.exists() and "memory" in unified.read_text().split():
            self.folder = CGROUP_ROOT / name
            limits = {"memory.max": limit_bytes, "memory.swap.max": 0}
        elif (CGROUP_ROOT / "memory").is_dir():
            self.folder = CGROUP_ROOT / "memory" / name
            limits = {"memory.limit_in_bytes": limit_bytes,
                      "memory.memsw.limit_in_bytes": limit_bytes}  # fmt: skip
        else:
            raise MemoryCapUnavailable(f"no memory cgroup controller under {CGROUP_ROOT}")
        try:
            self.folder.mkdir(exist_ok=True)
            first, *optional = limits.items()
            (self.folder / first[0]).write_text(str(first[1]))
            for file, value in optional:
                if (self.folder / file).exists():
                    (self.folder / file).write_text(str(value))
        except OSError as exc:
            raise MemoryCapUnavailable(f"cannot create {self.folder}: {exc.strerror}") from None

    def confine(self, pid: int) -> None:
        (self.folder / "cgroup.procs").write_text(str(pid))

    def confine_postgres(self, data_dir: Path) -> int:
        """Move the server whose data folder is `data_dir` (postmaster and children) inside;
        how many processes moved."""
        postmaster = int((data_dir / "postmaster.pid").read_text().split()[0])
        self.confine(postmaster)  # first: what it forks from now on is born inside
        moved = 1
        for pid in children_of(postmaster):
            try:
                self.confine(pid)
                moved += 1
            except ProcessLookupError:
                pass  # a backend that ended meanwhile (its client had just closed)
        return moved

    def release(self) -> None:
        """Give every process inside back to the parent cgroup (the cap stays, empty)."""
        parent = self.folder.parent / "cgroup.procs"
        for pid in (self.folder / "cgroup.procs").read_text().split():
            with contextlib.suppress(OSError):  # it ended meanwhile
                parent.write_text(pid)

    def remove(self) -> None:
        """Release the processes and delete the cgroup."""
        self.release()
        for _ in range(50):
            try:
                self.folder.rmdir()
                return
            except OSError:
                time.sleep(0.1)


def children_of(parent: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            found.append(int(stat.parent.name))
    return found


def drop_page_cache() -> None:
    """Write back dirty pages, then empty the kernel's page cache (root only)."""
    os.sync()
    try:
        DROP_CACHES.write_text("3\n")
    except OSError as exc:
        raise MemoryCapUnavailable(f"cannot empty the page cache: {exc.strerror}") from None


def parse_bytes(text: str) -> int:
    text = text.strip().upper().removesuffix("B").removesuffix("I")
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
    return int(float(text.rstrip("KMG")) * scale)
