"""Which Keras dtype policy to compute in, for training and for inference.

"auto" picks the fastest policy the hardware runs natively: float16 mixed
precision on a GPU, bfloat16 mixed precision on a CPU with bfloat16
instructions (AVX512-BF16 or AMX), float32 elsewhere. Without those
instructions bfloat16 is emulated and slower than float32, so it is never
chosen automatically there. Variables stay float32 under every policy and the
model's logits are float32.
"""

from __future__ import annotations

import functools
import platform

PRECISION_POLICIES = ("auto", "float32", "mixed_float16", "mixed_bfloat16")

#: CPU flags (as Linux lists them in /proc/cpuinfo) of native bfloat16 arithmetic.
BFLOAT16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def check_precision(policy: str) -> str:
    """Return ``policy`` when it is one of :data:`PRECISION_POLICIES`, else raise ValueError."""
    if policy not in PRECISION_POLICIES:
        raise ValueError(f"precision must be one of {', '.join(PRECISION_POLICIES)}, got {policy!r}")
    return policy


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none, e.g. macOS)."""
    if platform.system() != "Linux":
        return frozenset()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_has_bfloat16(flags=None) -> bool:
    """Whether the CPU computes bfloat16 natively (AVX512-BF16 or AMX-BF16)."""
    flags = cpu_flags() if flags is None else flags
    return any(flag in flags for flag in BFLOAT16_CPU_FLAGS)


def has_gpu() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_logical_devices("GPU"))


def resolve_precision(policy: str = "auto") -> str:
    """The Keras dtype policy ``policy`` stands for on this machine ("auto" resolved)."""
    check_precision(policy)
    if policy != "auto":
        return policy
    if has_gpu():
        return "mixed_float16"
    return "mixed_bfloat16" if cpu_has_bfloat16() else "float32"
