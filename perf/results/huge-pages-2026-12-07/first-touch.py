#!/usr/bin/env python3
"""What the first write to fresh anonymous memory costs on this machine: 64 MiB
mapped, one byte written per 4 KiB, with and without MADV_HUGEPAGE (what
mimalloc asks for). Prints the total per MiB and the slowest single write
(one page fault: 4 KiB, or 2 MiB with huge pages).
    python3 perf/results/huge-pages-2026-12-07/first-touch.py
"""
import mmap
import time


def touch(size, huge):
    m = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    if huge:
        m.madvise(mmap.MADV_HUGEPAGE)
    worst = 0.0
    t0 = time.perf_counter()
    for i in range(0, size, 4096):
        t = time.perf_counter()
        m[i] = 1
        worst = max(worst, time.perf_counter() - t)
    return time.perf_counter() - t0, worst


for huge in (True, False, True, False):
    total, worst = touch(64 << 20, huge)
    print("huge pages %-5s 64 MiB: %6.1f ms, %.3f ms/MiB, slowest write %.3f ms"
          % (huge, total * 1e3, total * 1e3 / 64, worst * 1e3))
