"""Which part a process plays in a search, from KerasTuner's environment.

KerasTuner's distributed mode: one process, the chief, holds the oracle and
serves it over gRPC; workers ask it for trials, train them and report back.
Each process runs the same ``search`` call (or ``keras-ae tune`` command)
with a shared ``directory`` and these environment variables::

    KERASTUNER_TUNER_ID=chief      # or tuner0, tuner1, ... one per worker
    KERASTUNER_ORACLE_IP=10.0.0.1  # the chief's address
    KERASTUNER_ORACLE_PORT=8000

Read from the environment as KerasTuner itself reads it, so that keras_ae
needs none of KerasTuner's private helpers (``Tuner._is_worker``).
"""

import os

from keras_ae.errors import InputError

ROLES = ("single", "chief", "worker")


def role():
    """``"chief"``, ``"worker"`` or ``"single"``: KerasTuner's distributed mode."""
    if "KERASTUNER_ORACLE_IP" not in os.environ:
        return "single"
    missing = [name for name in ("KERASTUNER_ORACLE_PORT", "KERASTUNER_TUNER_ID")
               if not os.environ.get(name)]
    if missing:
        raise InputError(
            f"KERASTUNER_ORACLE_IP is set (distributed search) but "
            f"{' and '.join(missing)} is not; set KERASTUNER_TUNER_ID=chief on "
            f"the chief and tuner0, tuner1, ... on the workers, and the same "
            f"KERASTUNER_ORACLE_PORT everywhere.")
    return "chief" if "chief" in os.environ["KERASTUNER_TUNER_ID"] else "worker"
