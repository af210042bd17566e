"""Which Keras dtype policy to compute in, for training and for inference.

"auto" picks the policy that is fastest on the hardware at hand: float16 mixed
precision on a GPU; on a CPU, bfloat16 mixed precision only where the CPU has
bfloat16 matrix units (Intel AMX: the ``amx_bf16`` and ``amx_tile`` flags of
/proc/cpuinfo), float32 everywhere else. CPUs with the AVX512-BF16 vector
instructions but no AMX get float32: measured on a 2-core Xeon of that kind
(issue 9), mixed_bfloat16 made a training step 1.4x and evaluation 1.6x slower
than float32. Without any bfloat16 instructions bfloat16 is emulated and slower
still.

Users who measured otherwise set the environment variable ``COSMICS_PRECISION``
to one of :data:`PRECISION_POLICIES`; it replaces "auto" (an explicit policy
argument other than "auto" wins over it). :func:`explain_precision` returns the
choice with a one-line reason naming the flags (or the variable) that decided
it, for runs and evaluations to record.

Variables stay float32 under every policy and the model's logits are float32.
"""

from __future__ import annotations

import functools
import os
import platform
from dataclasses import dataclass

PRECISION_POLICIES = ("auto", "float32", "mixed_float16", "mixed_bfloat16")

#: The environment variable that replaces "auto" with one of :data:`PRECISION_POLICIES`.
PRECISION_ENV = "COSMICS_PRECISION"

#: CPU flags (as Linux lists them in /proc/cpuinfo) of bfloat16 instructions of any kind.
BFLOAT16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")

#: CPU flags that must all be present for "auto" to pick mixed_bfloat16 on a CPU: AMX
#: tiles with bfloat16 matrix multiplication. AVX512-BF16 alone is slower than float32.
BFLOAT16_MATRIX_CPU_FLAGS = ("amx_bf16", "amx_tile")


@dataclass(frozen=True)
class PrecisionChoice:
    """A resolved dtype policy and why it was chosen.

    ``policy``: the Keras dtype policy (never "auto"). ``source``: "argument" (asked for
    explicitly), "environment" (:data:`PRECISION_ENV`) or "auto" (from the hardware).
    ``reason``: one line, ``"<policy>: <source detail>"``, naming the deciding flags.
    ``flags``: the CPU flags that decided it (empty when the CPU did not decide).
    """

    policy: str
    source: str
    reason: str
    flags: tuple[str, ...] = ()

    def __str__(self) -> str:
        return self.reason


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
    """Whether the CPU has bfloat16 instructions at all (AVX512-BF16 or AMX-BF16).

    Having them does not make bfloat16 faster than float32: see :func:`cpu_has_bfloat16_matrix`.
    """
    flags = cpu_flags() if flags is None else flags
    return any(flag in flags for flag in BFLOAT16_CPU_FLAGS)


def cpu_has_bfloat16_matrix(flags=None) -> bool:
    """Whether the CPU has bfloat16 matrix units (AMX: ``amx_bf16`` and ``amx_tile``),
    the only CPUs on which "auto" picks mixed_bfloat16."""
    flags = cpu_flags() if flags is None else flags
    return all(flag in flags for flag in BFLOAT16_MATRIX_CPU_FLAGS)


def has_gpu() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_logical_devices("GPU"))


def environment_precision() -> str | None:
    """The policy :data:`PRECISION_ENV` asks for (None when unset, empty or "auto").

    Raises ValueError naming the variable and the allowed values when it holds anything else.
    """
    raw = os.environ.get(PRECISION_ENV)
    if raw is None or not raw.strip():
        return None
    value = raw.strip().lower()
    if value not in PRECISION_POLICIES:
        raise ValueError(
            f"environment variable {PRECISION_ENV} must be one of {', '.join(PRECISION_POLICIES)}, got {raw!r}"
        )
    return None if value == "auto" else value


def _auto_choice() -> PrecisionChoice:
    if has_gpu():
        return PrecisionChoice("mixed_float16", "auto", "mixed_float16: auto, GPU present")
    flags = cpu_flags()
    if cpu_has_bfloat16_matrix(flags):
        deciding = BFLOAT16_MATRIX_CPU_FLAGS
        return PrecisionChoice(
            "mixed_bfloat16", "auto",
            f"mixed_bfloat16: auto, CPU has {'+'.join(deciding)} (AMX bfloat16 matrix units)", deciding,
        )
    missing = "/".join(flag for flag in BFLOAT16_MATRIX_CPU_FLAGS if flag not in flags)
    if "avx512_bf16" in flags:
        return PrecisionChoice(
            "float32", "auto",
            f"float32: auto, CPU has avx512_bf16 but no {missing} (AMX); bfloat16 is slower than float32 there",
            ("avx512_bf16",),
        )
    if not flags:
        return PrecisionChoice("float32", "auto", "float32: auto, no GPU and no CPU flags readable")
    return PrecisionChoice("float32", "auto", f"float32: auto, CPU has no {missing} (AMX) and no avx512_bf16")


def explain_precision(policy: str = "auto") -> PrecisionChoice:
    """The dtype policy ``policy`` stands for on this machine, with the reason.

    An explicit policy (not "auto") is kept as given, whatever :data:`PRECISION_ENV` says;
    "auto" takes :data:`PRECISION_ENV` when set, else decides from the hardware.
    """
    check_precision(policy)
    if policy != "auto":
        return PrecisionChoice(policy, "argument", f"{policy}: requested explicitly")
    override = environment_precision()
    if override is not None:
        return PrecisionChoice(override, "environment", f"{override}: {PRECISION_ENV}={override} overrides auto")
    return _auto_choice()


def resolve_precision(policy: str = "auto") -> str:
    """The Keras dtype policy ``policy`` stands for on this machine ("auto" resolved).

    Same as ``explain_precision(policy).policy``.
    """
    return explain_precision(policy).policy
