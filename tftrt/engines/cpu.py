"""What this machine's CPU offers: the instruction-set features engines compile for."""

from __future__ import annotations

import functools
import platform

# Features CPU engines specialise their kernels for (x86 names as /proc/cpuinfo has them).
ISA_FEATURES = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl",
                "avx512_vnni", "avx512_bf16", "avx512_fp16", "avx_vnni", "amx_tile",
                "amx_bf16", "amx_int8", "asimd", "sve", "sve2", "bf16", "i8mm")


def _cpuinfo() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return f.read()
    except OSError:
        return ""


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (empty where /proc/cpuinfo cannot be read)."""
    flags: set[str] = set()
    for line in _cpuinfo().splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    return frozenset(flags)


@functools.cache
def cpu_model() -> str:
    """The CPU's model name, as /proc/cpuinfo gives it (else what Python knows)."""
    for line in _cpuinfo().splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            return value.strip()
    return platform.processor() or "unknown"


def isa_signature() -> str:
    """The machine and the ISA features engines may be compiled for, e.g.
    ``x86_64:avx,avx2,avx512f,...``: an engine compiled under one signature is not
    used under another."""
    found = [f for f in ISA_FEATURES if f in cpu_flags()]
    return f"{platform.machine().lower()}:{','.join(found)}"


def cpu_has_vnni() -> bool:
    """False on x86 CPUs without VNNI/AMX int8 dot products (e.g. AVX2 only)."""
    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686"):
        return True
    return bool(cpu_flags() & {"avx512_vnni", "avx_vnni", "amx_int8"})
