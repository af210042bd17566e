import pytest

from segcore import precision


@pytest.fixture(autouse=True)
def no_precision_override(monkeypatch):
    """The tests decide COSMICS_PRECISION themselves, whatever the shell running them set."""
    monkeypatch.delenv(precision.PRECISION_ENV, raising=False)


def machine(monkeypatch, gpu=False, flags=()):
    monkeypatch.setattr(precision, "has_gpu", lambda: gpu)
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset(flags))


AMX_XEON = {"avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8"}
AVX512_BF16_XEON = {"avx2", "avx512f", "avx512_bf16", "avx512_vnni"}
AVX2_CPU = {"sse4_2", "avx", "avx2", "fma"}


@pytest.mark.parametrize(
    "flags, native",
    [({"avx2", "avx512f"}, False), ({"avx512f", "avx512_bf16"}, True), ({"amx_tile", "amx_bf16"}, True), (set(), False)],
)
def test_bfloat16_instructions_are_avx512_bf16_or_amx(flags, native):
    assert precision.cpu_has_bfloat16(frozenset(flags)) is native


@pytest.mark.parametrize(
    "flags, matrix",
    [(AMX_XEON, True), (AVX512_BF16_XEON, False), (AVX2_CPU, False), ({"amx_bf16"}, False), (set(), False)],
)
def test_bfloat16_matrix_units_need_amx_bf16_and_amx_tile(flags, matrix):
    assert precision.cpu_has_bfloat16_matrix(frozenset(flags)) is matrix


@pytest.mark.parametrize(
    "gpu, flags, expected, deciding_flag",
    [
        (True, AMX_XEON, "mixed_float16", "GPU"),
        (True, AVX2_CPU, "mixed_float16", "GPU"),
        (False, AMX_XEON, "mixed_bfloat16", "amx_bf16"),
        # bfloat16 measured 1.4x slower (training) and 1.6x slower (inference) there: issue 9
        (False, AVX512_BF16_XEON, "float32", "avx512_bf16"),
        (False, AVX2_CPU, "float32", "amx_bf16"),
        (False, set(), "float32", "no CPU flags"),
    ],
)
def test_auto_is_float16_on_gpu_bfloat16_only_with_amx_else_float32(monkeypatch, gpu, flags, expected, deciding_flag):
    machine(monkeypatch, gpu, flags)
    assert precision.resolve_precision("auto") == expected
    assert precision.resolve_precision() == expected
    choice = precision.explain_precision("auto")
    assert choice.policy == expected and choice.source == "auto"
    assert choice.reason.startswith(f"{expected}: auto, ")
    assert deciding_flag in choice.reason
    assert "\n" not in choice.reason and str(choice) == choice.reason


def test_amx_reason_names_both_amx_flags(monkeypatch):
    machine(monkeypatch, flags=AMX_XEON)
    choice = precision.explain_precision()
    assert "amx_bf16" in choice.reason and "amx_tile" in choice.reason
    assert set(choice.flags) == {"amx_bf16", "amx_tile"}


def test_avx512_bf16_without_amx_reason_says_amx_is_missing(monkeypatch):
    machine(monkeypatch, flags=AVX512_BF16_XEON)
    choice = precision.explain_precision()
    assert "avx512_bf16" in choice.reason and "amx" in choice.reason.split("avx512_bf16", 1)[1]
    assert choice.flags == ("avx512_bf16",)


@pytest.mark.parametrize("value", ["float32", "mixed_float16", "mixed_bfloat16", " Mixed_BFloat16 "])
def test_environment_overrides_auto(monkeypatch, value):
    machine(monkeypatch, gpu=False, flags=AVX2_CPU)
    monkeypatch.setenv("COSMICS_PRECISION", value)
    expected = value.strip().lower()
    assert precision.resolve_precision("auto") == expected
    choice = precision.explain_precision("auto")
    assert choice.source == "environment"
    assert "COSMICS_PRECISION" in choice.reason and choice.reason.startswith(f"{expected}: ")


@pytest.mark.parametrize("value", ["", "  ", "auto"])
def test_empty_or_auto_environment_leaves_auto_to_the_hardware(monkeypatch, value):
    machine(monkeypatch, flags=AMX_XEON)
    monkeypatch.setenv("COSMICS_PRECISION", value)
    assert precision.explain_precision().source == "auto"
    assert precision.resolve_precision() == "mixed_bfloat16"


def test_explicit_policy_beats_environment_and_hardware(monkeypatch):
    machine(monkeypatch, gpu=True, flags=AMX_XEON)
    monkeypatch.setenv("COSMICS_PRECISION", "mixed_bfloat16")
    assert precision.resolve_precision("float32") == "float32"
    choice = precision.explain_precision("mixed_float16")
    assert (choice.policy, choice.source) == ("mixed_float16", "argument")
    assert choice.reason == "mixed_float16: requested explicitly"


def test_an_explicit_policy_is_kept(monkeypatch):
    machine(monkeypatch, gpu=True)
    assert precision.resolve_precision("float32") == "float32"
    assert precision.resolve_precision("mixed_bfloat16") == "mixed_bfloat16"


def test_bad_environment_value_names_the_variable_and_the_policies(monkeypatch):
    machine(monkeypatch)
    monkeypatch.setenv("COSMICS_PRECISION", "half")
    with pytest.raises(ValueError, match="COSMICS_PRECISION") as error:
        precision.resolve_precision("auto")
    message = str(error.value)
    assert "'half'" in message
    for policy in precision.PRECISION_POLICIES:
        assert policy in message


def test_unknown_policy_is_refused():
    with pytest.raises(ValueError, match="precision must be one of"):
        precision.resolve_precision("half")
