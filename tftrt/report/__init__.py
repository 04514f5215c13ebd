"""Conversion reports: the ``converter.summary()`` table and the non-conversion report."""

from tftrt.report.nonconversion import (
    emit_nonconversion_report,
    format_nonconversion_report,
    write_nonconversion_csv,
)
from tftrt.report.summary import format_summary

__all__ = [
    "emit_nonconversion_report",
    "format_nonconversion_report",
    "format_summary",
    "write_nonconversion_csv",
]
