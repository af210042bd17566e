import pytest

from segcore import precision


@pytest.mark.parametrize(
    "flags, native",
    [({"avx2", "avx512f"}, False), ({"avx512f", "avx512_bf16"}, True), ({"amx_tile", "amx_bf16"}, True), (set(), False)],
)
def test_bfloat16_is_native_only_with_avx512_bf16_or_amx(flags, native):
    assert precision.cpu_has_bfloat16(frozenset(flags)) is native


@pytest.mark.parametrize(
    "gpu, flags, expected",
    [
        (True, {"avx512_bf16"}, "mixed_float16"),
        (False, {"avx512_bf16"}, "mixed_bfloat16"),
        (False, {"avx2"}, "float32"),
    ],
)
def test_auto_is_float16_on_gpu_bfloat16_on_bfloat16_cpus_else_float32(monkeypatch, gpu, flags, expected):
    monkeypatch.setattr(precision, "has_gpu", lambda: gpu)
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset(flags))
    assert precision.resolve_precision("auto") == expected


def test_an_explicit_policy_is_kept(monkeypatch):
    monkeypatch.setattr(precision, "has_gpu", lambda: True)
    assert precision.resolve_precision("float32") == "float32"
    assert precision.resolve_precision("mixed_bfloat16") == "mixed_bfloat16"


def test_unknown_policy_is_refused():
    with pytest.raises(ValueError, match="precision must be one of"):
        precision.resolve_precision("half")
