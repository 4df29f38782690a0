"""One case in a fresh Python process, killed at its ``case_timeout_s``.

The SIGALRM limit of :func:`experiments.runner.run_case` works only in a process's main thread. Where
cases run in other threads (Dask workers), a case with a timeout runs here instead: the parent pickles
the case to a file, starts ``python -m experiments.case_process CASE ROW``, waits at most the timeout and
kills the child past it. The child's imports count towards the limit (about a second).
``subprocess`` rather than ``multiprocessing``: Dask's worker processes are daemonic and may not start
multiprocessing children.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from experiments.grid import Case


class CaseProcessError(Exception):
    """The case failed inside the child; the message is the child's ``error_message`` of the exception."""


def solve_case_in_process(case: Case, timeout_s: float) -> dict[str, Any]:
    """The row cells of ``case`` computed in a child process; raise past ``timeout_s``.

    Raises
    ------
    experiments.runner.CaseTimeoutError
        The child ran past ``timeout_s`` and was killed.
    CaseProcessError
        The case raised in the child, or the child died without writing its result.
    """
    from experiments.runner import CaseTimeoutError

    with tempfile.TemporaryDirectory(prefix="serveplan-case-") as tmp:
        case_path, row_path = Path(tmp) / "case.pkl", Path(tmp) / "row.pkl"
        case_path.write_bytes(pickle.dumps(case))
        # The child sees the parent's import path (plugins may live on a path added at run time).
        env = os.environ | {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        cmd = [sys.executable, "-m", "experiments.case_process", str(case_path), str(row_path)]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True)
        try:
            _, err = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise CaseTimeoutError(f"case ran past case_timeout_s = {timeout_s:g} s (child process killed)") from None
        if not row_path.exists():
            tail = " | ".join(err.strip().splitlines()[-3:])
            raise CaseProcessError(f"case process exited with code {proc.returncode} without a result: {tail}")
        kind, payload = pickle.loads(row_path.read_bytes())
    if kind == "error":
        raise CaseProcessError(payload)
    return payload


def main(argv: list[str]) -> int:
    """Child side: read the case, solve it, write ``("ok", cells)`` or ``("error", message)``."""
    from experiments.runner import _solve_case, error_message

    case_path, row_path = Path(argv[0]), Path(argv[1])
    case = pickle.loads(case_path.read_bytes())
    try:
        result: tuple[str, Any] = ("ok", _solve_case(case))
    except Exception as exc:
        result = ("error", error_message(exc))
    tmp = row_path.with_suffix(".part")
    tmp.write_bytes(pickle.dumps(result))
    os.replace(tmp, row_path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
