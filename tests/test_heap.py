"""heap.settle: the free chunks a compilation leaves are taken out of malloc's bins."""

import json
import os
import subprocess
import sys

import pytest

from jaxssl.train import heap, xla_cpu

# Leaves ~2,000 free chunks of 2,000 different sizes between live blocks (as a compilation
# does), then settles; glibc's own accounting (malloc_info) counts the bins before and after.
_FRAGMENT = """
import ctypes, json, random, re
from jaxssl.train import heap, xla_cpu
applied = xla_cpu.keep_buffers_in_heap()
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.fopen.restype = ctypes.c_void_p

def free_chunks():  # (count, bytes) of the main arena's free chunks of at least 1,040 bytes
    f = libc.fopen(b"%(xml)s", b"w")
    libc.malloc_info(0, ctypes.c_void_p(f))
    libc.fclose(ctypes.c_void_p(f))
    arena = open("%(xml)s").read().split("</heap>")[0]
    sizes = re.findall(r'<size from="(\\d+)" to="(\\d+)" total="(\\d+)" count="(\\d+)"/>', arena)
    big = [(int(t), int(c)) for lo, hi, t, c in sizes if int(lo) >= 1040]
    return sum(c for _, c in big), sum(t for t, _ in big)

rng = random.Random(0)
blocks = [libc.malloc(rng.randrange(1024, 200_000)) for _ in range(4000)]
for address in blocks[::2]:  # every other block: its neighbours stay, so nothing merges
    libc.free(address)
before = free_chunks()
taken = heap.settle()
again = heap.settle()
after = free_chunks()
probe = libc.malloc(100_000)  # a oneDNN-sized workspace after settling: from the top
print(json.dumps({"applied": applied, "before": before, "after": after, "taken": taken,
                  "again": again, "probe_above": probe > max(heap._held, default=0)}))
"""


def _fragment(tmp_path, **env) -> dict:
    code = _FRAGMENT % {"xml": tmp_path / "malloc_info.xml"}
    out = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.skipif(not xla_cpu._glibc(), reason="glibc's bins")
def test_settle_empties_the_large_bins_and_the_next_workspace_comes_from_the_top(tmp_path):
    run = _fragment(tmp_path, **{xla_cpu.OPT_OUT: ""})
    assert run["applied"]
    (count, size), (count_after, size_after) = run["before"], run["after"]
    assert count >= 1900  # the ~2,000 freed blocks, some merged with free neighbours
    assert (count_after, size_after) == (0, 0)
    # All of the fragments were taken, less under 1 KB of each chunk's tail (left to the
    # small bins, which hold one size each and are never walked).
    assert size - 1024 * count <= run["taken"] <= size + 2**20
    # Nothing left but what the first call freed itself: the list of held addresses as it grew,
    # the last (top-cut) request of each size, cached by malloc for its thread.
    assert run["again"] < 2**18
    assert run["probe_above"]


@pytest.mark.skipif(not xla_cpu._glibc(), reason="glibc's bins")
def test_settle_leaves_the_system_malloc_alone(tmp_path):
    run = _fragment(tmp_path, **{xla_cpu.OPT_OUT: "1"})
    assert not run["applied"] and run["taken"] == 0
    (count, size), (count_after, size_after) = run["before"], run["after"]
    assert count_after >= count - 8 and size_after >= size - 2**16  # left in the bins


def test_settle_is_a_no_op_without_jaxssls_heap_setting():
    assert xla_cpu.heap_kept() is False  # tests run on the system malloc (conftest)
    assert heap.settle() == 0
