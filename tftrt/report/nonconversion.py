"""The non-conversion report: which op types stayed out of engines, and why."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping

from tftrt.env import get as env_value

ENV_VAR = "TF_TRT_SHOW_DETAILED_REPORT"
DOCS_URL = (
    "https://docs.nvidia.com/deeplearning/frameworks/tf-trt-user-guide/index.html#supported-ops"
)
CSV_SEPARATOR = "|"
CSV_HEADER = ("OP Name", "Reason", "Count")

Counts = Mapping[str, Mapping[str, int]]


def format_nonconversion_report(counts: Counts, detailed: bool) -> str:
    """The report text for ``counts`` (op type -> reason -> number of nodes).

    Op types come by total count, largest first (ties by name); with
    ``detailed``, each op type also lists its reasons, largest count first
    (ties by reason), skipping zero counts. The text starts with two newlines,
    as TF-TRT's does, so that a logged report begins on its own line.
    """
    totals = {op: sum(reasons.values()) for op, reasons in counts.items()}
    parts = ["\n\n", "#" * 80, "\nTensorRT unsupported/non-converted OP Report:"]
    for op in sorted(counts, key=lambda o: (-totals[o], o)):
        parts.append(f"\n\t- {op} -> {totals[op]}x")
        if detailed:
            reasons = sorted(counts[op].items(), key=lambda rc: (-rc[1], rc[0]))
            for reason, n in reasons:
                if n != 0:
                    parts.append(f"\n\t\t- [Count: {n}x] {reason}")
            parts.append("\n")
    parts += [
        "\n",
        "-" * 80,
        f"\n\t- Total nonconverted OPs: {sum(totals.values())}",
        f"\n\t- Total nonconverted OP Types: {len(counts)}",
        f"\nFor more information see {DOCS_URL}.",
        "\n",
        "#" * 80,
        "\n",
    ]
    return "".join(parts)


def format_nonconversion_csv(counts: Counts) -> str:
    """The CSV text: ``OP Name|Reason|Count`` then one line per (op, reason), sorted."""
    lines = [CSV_SEPARATOR.join(CSV_HEADER)]
    for op in sorted(counts):
        for reason in sorted(counts[op]):
            lines.append(CSV_SEPARATOR.join((op, reason, str(counts[op][reason]))))
    return "\n".join(lines) + "\n"


def write_nonconversion_csv(counts: Counts, path: str | os.PathLike[str]) -> None:
    """Write the CSV report to ``path`` atomically (readers see the old file or the new one).

    Raises:
      OSError: if the file cannot be written.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        mode = os.stat(path).st_mode & 0o7777
    except OSError:
        mode = 0o644
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tftrt-report-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(format_nonconversion_csv(counts))
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def emit_nonconversion_report(
    counts: Counts,
    env: Mapping[str, str] | None = None,
    log: logging.Logger = logging.getLogger("tftrt.report"),  # noqa: B008
) -> str:
    """Log the non-conversion report at WARNING, as ``TF_TRT_SHOW_DETAILED_REPORT`` asks.

    The variable (read from ``env``, default ``os.environ``; see ``tftrt.env``)
    selects the mode: unset or empty gives the normal report; a number >= 1 the
    detailed one; any other number the normal one; anything else is a path, where
    the CSV report is written (a failure is logged as ERROR) and the detailed
    report is logged. Returns the logged text.
    """
    mode = env_value(ENV_VAR, env)
    if mode.csv_path is not None:
        try:
            write_nonconversion_csv(counts, mode.csv_path)
        except OSError as e:
            log.error(
                "Problem encountered while generating the TF-TRT Non-Conversion Report "
                "in CSV Format:\n%s",
                e,
            )
        else:
            log.warning("TF-TRT Non-Conversion Report saved at: `%s`", mode.csv_path)
    text = format_nonconversion_report(counts, mode.detailed)
    log.warning("%s", text)
    return text
