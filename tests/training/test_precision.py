"""Choosing the precision policy: the CPU's bfloat16 flags, read and faked."""

import pytest

from keras_ae.training import precision
from keras_ae.training.precision import choose_policy, cpu_bfloat16_flags

# Two processors as /proc/cpuinfo lists them (flags shortened).
SAPPHIRE_RAPIDS = """processor\t: 0
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse2 avx2 avx512f avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8

processor\t: 1
flags\t\t: fpu sse2 avx2 avx512f avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8
"""
SKYLAKE = """processor\t: 0
model name\t: Intel(R) Xeon(R) Gold 6148
flags\t\t: fpu sse2 avx2 avx512f avx512bw avx512vl
"""
# a flag's name inside another word, or on another line, is not the flag
LOOKALIKE = "model name\t: avx512_bf16 emulator\nflags\t\t: avx2 no_amx_bf16x\n"


@pytest.mark.parametrize("text, expected", [
    (SAPPHIRE_RAPIDS, ("avx512_bf16", "amx_bf16")),
    (SKYLAKE, ()),
    (LOOKALIKE, ()),
    ("flags : avx512_bf16\n", ("avx512_bf16",)),  # Cooper Lake, Zen 4
])
def test_bfloat16_flags_read_from_cpuinfo(tmp_path, text, expected):
    path = tmp_path / "cpuinfo"
    path.write_text(text)
    assert cpu_bfloat16_flags(path) == expected


def test_no_cpuinfo_means_no_bfloat16(tmp_path):
    assert cpu_bfloat16_flags(tmp_path / "missing") == ()


@pytest.mark.parametrize("choice, gpus, flags, expected", [
    ("auto", 0, ("avx512_bf16",), "mixed_bfloat16"),
    ("auto", 0, ("amx_bf16",), "mixed_bfloat16"),
    ("auto", 0, (), "float32"),
    ("auto", 2, ("avx512_bf16",), "mixed_float16"),
    ("auto", 1, (), "mixed_float16"),
    ("on", 0, (), "mixed_bfloat16"),   # asked for: emulated if need be
    (True, 0, ("amx_bf16",), "mixed_bfloat16"),
    ("on", 1, ("amx_bf16",), "mixed_float16"),
    ("off", 1, ("amx_bf16",), "float32"),
    (False, 0, ("amx_bf16",), "float32"),
    ("mixed_float16", 0, (), "mixed_float16"),
    ("mixed_bfloat16", 4, (), "mixed_bfloat16"),
    ("float32", 0, ("amx_bf16",), "float32"),
])
def test_policy_choice(choice, gpus, flags, expected):
    assert choose_policy(choice, gpus=gpus, cpu_flags=flags) == expected


def test_auto_reads_the_cpu_flags_when_not_given(monkeypatch):
    monkeypatch.setattr(precision, "cpu_bfloat16_flags", lambda: ("amx_bf16",))
    assert choose_policy("auto") == "mixed_bfloat16"
    monkeypatch.setattr(precision, "cpu_bfloat16_flags", lambda: ())
    assert choose_policy("auto") == "float32"


@pytest.mark.parametrize("bad", ["yes", "bfloat16", 1, None, "mixed_float32"])
def test_unknown_choices_are_refused(bad):
    with pytest.raises(ValueError, match=rf"got {bad!r}\.$"):
        choose_policy(bad)
