"""Which precision policy training computes in, chosen for the machine.

Keras' mixed-precision policies keep every variable in float32 and compute
layers in a 16-bit type: ``mixed_float16`` on GPUs (tensor cores; Keras
scales the loss), ``mixed_bfloat16`` on CPUs whose instructions compute in
bfloat16 (AVX-512 BF16, AMX): "auto" picks it there, the speed and
quality it buys being in docs/benchmarks.md ("Training speed on this CPU").
A CPU without those
instructions would emulate bfloat16, so ``"auto"`` reads what the CPU says
it can do rather than guessing from its name. keras_ae's builders keep the
sigmoid output in float32, so the loss is computed in float32 under every
policy; exports are float32 graphs.

>>> choose_policy("auto", gpus=0, cpu_flags=("avx512_bf16",))
'mixed_bfloat16'
>>> choose_policy("auto", gpus=0, cpu_flags=())
'float32'
>>> choose_policy("auto", gpus=1, cpu_flags=())
'mixed_float16'
"""

from pathlib import Path

from keras_ae.errors import InputError

POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")
# "auto", on and off, or a policy by name; True and False mean on and off.
CHOICES = ("auto", "on", "off", *POLICIES)
# /proc/cpuinfo flags of instructions that compute in bfloat16: AVX-512 BF16
# (Cooper Lake, Zen 4 and later) and AMX (Sapphire Rapids and later).
BFLOAT16_FLAGS = ("avx512_bf16", "amx_bf16")
CPUINFO = "/proc/cpuinfo"


def cpu_bfloat16_flags(cpuinfo=CPUINFO):
    """The bfloat16 instruction flags this CPU reports.

    Args:
        cpuinfo: the file listing the CPU's flags (Linux's ``/proc/cpuinfo``).

    Returns:
        A tuple of the ``BFLOAT16_FLAGS`` found, e.g.
        ``("avx512_bf16", "amx_bf16")``; empty where the CPU has none or the
        file cannot be read (other systems: no bfloat16 is assumed).

    Example:

    >>> set(cpu_bfloat16_flags()) <= set(BFLOAT16_FLAGS)
    True
    """
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return ()
    flags = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            flags.update(value.split())
    return tuple(flag for flag in BFLOAT16_FLAGS if flag in flags)


def choose_policy(mixed_precision="auto", *, gpus=0, cpu_flags=None):
    """The Keras precision policy to train with.

    Args:
        mixed_precision: ``"auto"``: ``mixed_float16`` where there is a GPU,
            ``mixed_bfloat16`` on a CPU with bfloat16 instructions, else
            ``float32``. ``"on"`` (or ``True``): mixed precision in the
            device's 16-bit type (``mixed_float16`` on a GPU,
            ``mixed_bfloat16`` on a CPU, emulated where it has no bfloat16
            instructions). ``"off"`` (or ``False``): ``float32``. Or a policy
            by name: ``"float32"``, ``"mixed_float16"``, ``"mixed_bfloat16"``.
        gpus: how many GPUs training uses.
        cpu_flags: the CPU's bfloat16 flags; ``None`` reads them
            (``cpu_bfloat16_flags``).

    Returns:
        One of ``POLICIES``.

    Raises:
        InputError: for any other ``mixed_precision``.

    Example:

    >>> choose_policy("off", gpus=1)
    'float32'
    >>> choose_policy("mixed_bfloat16")
    'mixed_bfloat16'
    """
    choice = ({True: "on", False: "off"}[mixed_precision]
              if isinstance(mixed_precision, bool) else mixed_precision)
    if choice not in CHOICES:
        raise InputError(
            f"mixed_precision must be one of {list(CHOICES)} (or True, False), "
            f"got {mixed_precision!r}.")
    if choice in POLICIES:
        return choice
    if choice == "off":
        return "float32"
    if gpus:
        return "mixed_float16"
    if choice == "on":
        return "mixed_bfloat16"
    has_bfloat16 = cpu_bfloat16_flags() if cpu_flags is None else cpu_flags
    return "mixed_bfloat16" if has_bfloat16 else "float32"
