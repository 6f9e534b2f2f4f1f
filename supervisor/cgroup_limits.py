"""What the container this process runs in allows it: CPUs, the CPU time it used, memory.

Owns: reading the limits of this process's own cgroup under a root folder (/sys/fs/cgroup on
Linux; a temporary folder in tests), in both layouts:
- v2 (unified): `cpu.max` ("quota period" or "max period"), `cpu.stat` (`usage_usec`),
  `memory.max` ("max" or bytes);
- v1: `cpu/cpu.cfs_quota_us` and `cpu/cpu.cfs_period_us` (-1: no quota),
  `cpuacct/cpuacct.usage` (nanoseconds), `memory/memory.limit_in_bytes` (a huge number: none).
The CPU quota and the memory limit are the least of this process's own cgroup's and every
ancestor's up to the root of the mounted hierarchy: a `max` in its own folder (as in a
Kubernetes container under its pod's limits) does not lift a parent's limit. The parsers are
pure functions of the files' text; the readers only open files.

Why: a container limited to 2 CPUs on a 64-core host sees 64 in `os.cpu_count()` and an idle
host in /proc/stat while it is throttled (issue 27).

Never: raise (a missing or garbled file means "no limit"), cache, or write anything.
"""

from __future__ import annotations

import math
from pathlib import Path, PurePosixPath

CGROUP_ROOT = "/sys/fs/cgroup"
PROC_SELF_CGROUP = "/proc/self/cgroup"
# cgroup v1 writes "no memory limit" as the largest page-aligned signed 64-bit number.
V1_NO_MEMORY_LIMIT = 2**62


def parse_cpu_max(text: str) -> float | None:
    """CPUs a v2 `cpu.max` allows ("200000 100000" -> 2.0); None for "max" or garbage."""
    fields = text.split()
    if len(fields) != 2 or fields[0] == "max":
        return None
    return _quota(fields[0], fields[1])


def parse_cfs(quota_text: str, period_text: str) -> float | None:
    """CPUs v1's `cpu.cfs_quota_us` / `cpu.cfs_period_us` allow; None for -1 or garbage."""
    return _quota(quota_text.strip(), period_text.strip())


def _quota(quota: str, period: str) -> float | None:
    try:
        cpus = int(quota) / int(period)
    except (ValueError, ZeroDivisionError):
        return None
    return cpus if cpus > 0 else None


def parse_memory_limit(text: str) -> int | None:
    """Bytes a `memory.max` (v2) or `memory.limit_in_bytes` (v1) allows; None: no limit."""
    try:
        limit = int(text.strip())
    except ValueError:
        return None  # "max", or garbage
    return limit if 0 < limit < V1_NO_MEMORY_LIMIT else None


def parse_usage_usec(cpu_stat_text: str) -> int | None:
    """The `usage_usec` line of a v2 `cpu.stat`."""
    for line in cpu_stat_text.splitlines():
        name, _, value = line.partition(" ")
        if name == "usage_usec" and value.strip().isdigit():
            return int(value)
    return None


def parse_own_paths(proc_self_cgroup_text: str) -> dict[str, str]:
    """This process's cgroup path per controller, from /proc/self/cgroup: "0::/a/b" gives
    {"": "a/b"} (v2), "4:memory:/c" gives {"memory": "c"}, "2:cpu,cpuacct:/d" gives both
    "cpu" and "cpuacct" "d"."""
    paths = {}
    for line in proc_self_cgroup_text.splitlines():
        fields = line.split(":", 2)
        if len(fields) == 3:
            for controller in fields[1].split(","):
                paths[controller] = fields[2].strip().strip("/")
    return paths


class Cgroup:
    """The cgroup files of this process under `root`."""

    def __init__(self, root: str | Path = CGROUP_ROOT, proc_self: str = PROC_SELF_CGROUP):
        self.root = Path(root)
        self.own = parse_own_paths(_read(Path(proc_self)) or "")

    def _folders(self, controller: str) -> list[Path]:
        """A controller's folders ("" is v2's unified one) from our own cgroup up to the
        root of its mounted hierarchy. Outside a cgroup namespace our own folder is at our
        path; inside one (a container) the root we see is ours already, and the host's path
        does not exist there, so the walk ends at the root either way."""
        base = self.root / controller
        own = PurePosixPath(self.own.get(controller.split(",")[0], ""))
        return [base / own, *(base / parent for parent in own.parents)]

    def _files(self, controller: str, name: str) -> list[str]:
        """The texts of `name` in our own cgroup and each ancestor, nearest first."""
        texts = (_read(folder / name) for folder in self._folders(controller))
        return [text for text in texts if text is not None]

    def _file(self, controller: str, name: str) -> str | None:
        """The nearest `name`: our own cgroup's, or failing that an ancestor's."""
        return next(iter(self._files(controller, name)), None)

    def cpu_quota(self) -> float | None:
        """CPUs the quota allows (fractional), or None when there is no quota. The least
        of our own cgroup's and every ancestor's: a "max" in our own folder does not lift
        a parent's quota (a pod's, a slice's)."""
        texts = self._files("", "cpu.max")
        if texts:
            return least(parse_cpu_max(text) for text in texts)
        for controller in ("cpu", "cpu,cpuacct"):
            quotas = [
                parse_cfs(quota, period)
                for folder in self._folders(controller)
                if (quota := _read(folder / "cpu.cfs_quota_us")) is not None
                and (period := _read(folder / "cpu.cfs_period_us")) is not None
            ]
            if quotas:
                return least(quotas)
        return None

    def memory_limit(self) -> int | None:
        """Bytes the cgroup may use, or None when there is no limit: the least of our own
        cgroup's and every ancestor's, as for the CPU quota."""
        texts = self._files("", "memory.max") or self._files("memory", "memory.limit_in_bytes")
        return least(parse_memory_limit(text) for text in texts)

    def _v1(self, name: str, controllers: tuple[str, ...]) -> str | None:
        for controller in controllers:
            text = self._file(controller, name)
            if text is not None:
                return text
        return None

    def cpu_usage_s(self) -> float | None:
        """CPU seconds the cgroup's processes have used, all of them together."""
        text = self._file("", "cpu.stat")
        if text is not None:
            usec = parse_usage_usec(text)
            return usec / 1e6 if usec is not None else None
        text = self._v1("cpuacct.usage", ("cpuacct", "cpu,cpuacct", "cpu"))
        if text is not None and text.strip().isdigit():
            return int(text) / 1e9
        return None


def least(limits):
    """The smallest of these limits, None ones meaning "no limit"; None if all are."""
    return min((limit for limit in limits if limit is not None), default=None)


def quota_cpus(quota: float | None, affinity: int) -> int:
    """Whole CPUs to size by: the quota rounded up (1.5 CPUs keep two decoders busy), never
    more than the CPUs the process may run on, never fewer than one."""
    if quota is None:
        return max(1, affinity)
    return max(1, min(affinity, math.ceil(quota)))


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return None
