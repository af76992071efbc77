"""Holds the free chunks a compilation leaves in jaxssl's one malloc arena, so steps run fast.

On a CPU-only host jaxssl keeps every thread in one glibc arena (xla_cpu.keep_buffers_in_heap),
and what the compiler frees stays there: about 21,000 free chunks and 260 MB after the causal-LM
train step compiles. oneDNN's matmul kernel asks for a 64-128 KB aligned workspace on every call
(about 1,400 a LM step) and each request walks the large bins' lists of those chunks: 3.5 us a
call instead of 0.4, a 1.15-1.36x slower step than in a process that loaded the step from the
persistent cache (benchmarks/README.md, "The cause"). `settle` takes every free chunk out of the
bins (mallocs that are never freed) until malloc starts cutting from the top of the heap: later
requests then find their own freed chunks or the top at once, and the step runs as fast as a
loaded one. That costs no memory the process had not already mapped (the chunks were resident and
never returned: the heap setting keeps freed memory), only the reuse of that garbage by later
allocations, and takes about 50 ms.
Hand-coded: no library exposes glibc's bins; tcmalloc or jemalloc would need LD_PRELOAD.
"""

import ctypes
import functools
import threading

from jaxssl.train import xla_cpu

# Requests from large to small, so that each takes whole chunks (splitting only bigger ones) and
# few calls empty the bins: powers of two down to 1 KB for the large bins, then each of the small
# bins' chunk sizes (1,008 down to 32 bytes in steps of 16; a request of n bytes is a chunk of
# n + 8 rounded up to 16). Taking the small chunks too brought the LM step from 1.10x to 1.02x
# a loaded process's (benchmarks/README.md).
SIZES = (1 << 20, 1 << 17, 1 << 14, 1 << 12, 1 << 10) + tuple(c - 8 for c in range(1008, 31, -16))
SLACK = 1 << 20  # chunks in malloc's per-thread cache count as in use, not free: at most ~0.5 MB


class _MallInfo2(ctypes.Structure):  # glibc >= 2.33, malloc.h
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",  # free bytes, the top chunk included
            "keepcost",  # the main arena's top chunk
        )
    ]


@functools.cache
def _libc() -> ctypes.CDLL | None:
    libc = ctypes.CDLL(None)
    if not all(hasattr(libc, name) for name in ("mallinfo2", "malloc", "free", "sbrk")):
        return None
    libc.mallinfo2.restype = _MallInfo2
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    libc.sbrk.restype = ctypes.c_void_p
    libc.sbrk.argtypes = [ctypes.c_ssize_t]
    return libc


_held: list[int] = []  # addresses of the chunks taken out of the bins, for the process's life
_lock = threading.Lock()


def settle() -> int:
    """Takes every free chunk out of the heap's bins; returns the bytes taken.

    A no-op (0) unless this process runs on keep_buffers_in_heap's one arena. Called after a
    compilation, before the steps that should not pay for its garbage (train/loop.py: after the
    first step and after each evaluation); cheap when there is nothing to take.
    """
    if not xla_cpu.heap_kept():
        return 0
    libc = _libc()
    if libc is None:
        return 0
    with _lock:
        info = libc.mallinfo2()
        # The main arena's heap is one sbrk region whose top chunk ends at the break: a chunk
        # returned at or above the top's start was cut from the top, so the bins are empty.
        top = libc.sbrk(0) - info.keepcost
        # Bounds the loop if the heap is not one contiguous region.
        budget = info.fordblks - info.keepcost + SLACK
        taken = 0
        for size in SIZES:
            while taken < budget:
                address = libc.malloc(size)
                if not address:
                    return taken
                if address >= top:
                    libc.free(address)
                    break
                _held.append(address)
                taken += size
        return taken
