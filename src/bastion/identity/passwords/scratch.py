"""Argon2's working memory, mapped once and reused by the next hash.

Every Argon2 hash fills ``hash_memory_kib`` of memory (19 MiB by default). Through libargon2's
own allocator that memory comes from malloc, which under ``bastion serve``'s fixed mmap
threshold maps fresh pages for each hash and hands them back when it ends: the kernel faults
in and zeroes 19 MiB per login (~270 faults and ~3 ms of system CPU with transparent huge
pages, ~4,900 faults and ~11 ms without), a seventh of the hash's own cost, on every login.

:class:`ScratchMemory` gives hashes at the configured parameters a buffer of their own through
libargon2's allocation callbacks (``argon2_context.allocate_cbk``/``free_cbk``): mapped on first
use (2 MiB aligned, transparent huge pages advised), wiped by libargon2 when the hash ends
(as it wipes memory before ``free``), and kept for the next hash. Bounds:

* at most ``max_buffers`` buffers exist (the hashing pool's concurrency, so no more memory
  than the pool already allows in flight); a hash that finds none free (a call outside the
  pool) runs on libargon2's allocator as before;
* a buffer is only handed to one hash at a time (taken from a locked free list);
* :meth:`release` unmaps the free buffers: the password service calls it once hashing has been
  idle a moment, so an idle worker holds no Argon2 memory.
"""

from __future__ import annotations

import mmap
import threading
from typing import Any

from _argon2_cffi_bindings import ffi, lib

__all__ = ["ScratchMemory"]

#: Transparent huge pages are 2 MiB on x86-64 and arm64 (4 KiB base pages).
_HUGE_PAGE = 2 << 20


class _Buffer:
    """One mapping and the two C callbacks that hand it to libargon2."""

    __slots__ = ("_data", "_map", "allocate", "free", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        # Over-mapped by one huge page so that the buffer can start on a 2 MiB boundary; the
        # slack is never touched, so it is never resident.
        self._map = mmap.mmap(-1, size + _HUGE_PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        if hasattr(mmap, "MADV_HUGEPAGE"):  # Linux; a no-op where THP is "never"
            self._map.madvise(mmap.MADV_HUGEPAGE)
        self._data = ffi.from_buffer(self._map)
        address = int(ffi.cast("uintptr_t", self._data))
        start = ffi.cast("uint8_t *", self._data) + (-address % _HUGE_PAGE)
        limit = size

        def allocate(memory: Any, requested: int) -> int:
            if requested > limit:  # never with the parameters the buffer was made for
                return int(lib.ARGON2_MEMORY_ALLOCATION_ERROR)
            memory[0] = start
            return int(lib.ARGON2_OK)

        def free(_memory: Any, _requested: int) -> None:
            # libargon2 has wiped the memory already (clear_internal_memory, before the call):
            # the buffer stays mapped for the next hash.
            return None

        error = int(lib.ARGON2_MEMORY_ALLOCATION_ERROR)
        self.allocate = ffi.callback("int(uint8_t **, size_t)", allocate, error=error)
        self.free = ffi.callback("void(uint8_t *, size_t)", free)

    def close(self) -> None:
        ffi.release(self._data)
        self._map.close()


class ScratchMemory:
    """Reusable Argon2 buffers of ``size`` bytes, at most ``max_buffers`` of them."""

    def __init__(self, size: int, max_buffers: int) -> None:
        if size < 1 or max_buffers < 1:
            raise ValueError("size and max_buffers must be >= 1")
        self.size = size
        self.max_buffers = max_buffers
        self._lock = threading.Lock()
        self._free: list[_Buffer] = []
        self._mapped = 0

    @property
    def mapped(self) -> int:
        """Buffers mapped right now (in use or free)."""
        return self._mapped

    def take(self) -> _Buffer | None:
        """A buffer for one hash (hand it back with :meth:`give_back`), or None when every
        allowed buffer is in use."""
        with self._lock:
            if self._free:
                return self._free.pop()
            if self._mapped >= self.max_buffers:
                return None
            self._mapped += 1  # reserved here, mapped outside the lock
        try:
            return _Buffer(self.size)
        except BaseException:
            with self._lock:
                self._mapped -= 1
            raise

    def give_back(self, buffer: _Buffer) -> None:
        with self._lock:
            self._free.append(buffer)

    def release(self) -> int:
        """Unmap the buffers no hash is using; returns how many were unmapped."""
        with self._lock:
            idle, self._free = self._free, []
            self._mapped -= len(idle)
        for buffer in idle:
            buffer.close()
        return len(idle)
