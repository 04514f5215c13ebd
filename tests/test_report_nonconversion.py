"""Non-conversion report: text layout, CSV export and ``TF_TRT_SHOW_DETAILED_REPORT``."""

from __future__ import annotations

import logging
import os

import pytest

from tftrt.report import (
    emit_nonconversion_report,
    format_nonconversion_report,
    write_nonconversion_csv,
)

COUNTS = {
    "Placeholder": {"graph input": 2},
    "Cast": {"int64 input": 1, "bool input": 1},
    "Identity": {"graph output": 3, "control dependency": 1},
    "NoOp": {"Op type NoOp is not supported.": 2},
}
# fmt: off
HEAD = "\n\n" + "#" * 80 + "\nTensorRT unsupported/non-converted OP Report:"
FOOT = (
    "\n" + "-" * 80
    + "\n\t- Total nonconverted OPs: 10"
    + "\n\t- Total nonconverted OP Types: 4"
    + "\nFor more information see https://docs.nvidia.com/deeplearning/frameworks/"
    + "tf-trt-user-guide/index.html#supported-ops.\n"
    + "#" * 80 + "\n"
)
# fmt: on
NORMAL = (
    HEAD
    + "\n\t- Identity -> 4x"
    + "\n\t- Cast -> 2x"  # ties on the total are ordered by op name
    + "\n\t- NoOp -> 2x"
    + "\n\t- Placeholder -> 2x"
    + FOOT
)
DETAILED = (
    HEAD
    + "\n\t- Identity -> 4x"
    + "\n\t\t- [Count: 3x] graph output"
    + "\n\t\t- [Count: 1x] control dependency\n"
    + "\n\t- Cast -> 2x"
    + "\n\t\t- [Count: 1x] bool input"
    + "\n\t\t- [Count: 1x] int64 input\n"
    + "\n\t- NoOp -> 2x"
    + "\n\t\t- [Count: 2x] Op type NoOp is not supported.\n"
    + "\n\t- Placeholder -> 2x"
    + "\n\t\t- [Count: 2x] graph input\n"
    + FOOT
)
CSV = (
    "OP Name|Reason|Count\n"
    "Cast|bool input|1\n"
    "Cast|int64 input|1\n"
    "Identity|control dependency|1\n"
    "Identity|graph output|3\n"
    "NoOp|Op type NoOp is not supported.|2\n"
    "Placeholder|graph input|2\n"
)
VAR = "TF_TRT_SHOW_DETAILED_REPORT"


@pytest.fixture
def log():
    return logging.getLogger("tftrt.test_report")


def test_normal_text():
    assert format_nonconversion_report(COUNTS, detailed=False) == NORMAL


def test_detailed_text():
    assert format_nonconversion_report(COUNTS, detailed=True) == DETAILED


def test_zero_counts_are_skipped_in_details_but_kept_in_csv(tmp_path):
    counts = {"Pack": {"never": 0, "dynamic shape": 2}}
    text = format_nonconversion_report(counts, detailed=True)
    assert "\n\t- Pack -> 2x\n\t\t- [Count: 2x] dynamic shape\n\n---" in text
    assert "never" not in text
    write_nonconversion_csv(counts, tmp_path / "r.csv")
    assert (tmp_path / "r.csv").read_text() == (
        "OP Name|Reason|Count\nPack|dynamic shape|2\nPack|never|0\n"
    )


def test_empty_counts():
    text = format_nonconversion_report({}, detailed=True)
    assert text == HEAD + FOOT.replace("OPs: 10", "OPs: 0").replace("Types: 4", "Types: 0")


def test_csv(tmp_path):
    path = tmp_path / "report.csv"
    path.write_text("stale\n")
    write_nonconversion_csv(COUNTS, path)
    assert path.read_text() == CSV
    assert os.listdir(tmp_path) == ["report.csv"]  # no temporary file left behind


def test_csv_write_error_is_raised_and_cleans_up(tmp_path):
    target = tmp_path / "a_directory"
    target.mkdir()
    with pytest.raises(OSError):
        write_nonconversion_csv(COUNTS, target)
    assert os.listdir(tmp_path) == ["a_directory"]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, NORMAL),
        ({VAR: ""}, NORMAL),
        ({VAR: "1"}, DETAILED),
        ({VAR: "2"}, DETAILED),
        ({VAR: "0"}, NORMAL),
        ({VAR: "-1"}, NORMAL),
    ],
)
def test_env_modes(env, expected, log, caplog):
    with caplog.at_level(logging.WARNING, logger=log.name):
        assert emit_nonconversion_report(COUNTS, env=env, log=log) == expected
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [(logging.WARNING, expected)]


def test_env_path_writes_csv_and_logs_detailed(tmp_path, log, caplog):
    path = tmp_path / "path.csv"
    with caplog.at_level(logging.WARNING, logger=log.name):
        text = emit_nonconversion_report(COUNTS, env={VAR: str(path)}, log=log)
    assert text == DETAILED
    assert path.read_text() == CSV
    messages = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert messages == [
        (logging.WARNING, f"TF-TRT Non-Conversion Report saved at: `{path}`"),
        (logging.WARNING, DETAILED),
    ]


def test_env_path_write_error_is_logged(tmp_path, log, caplog):
    path = tmp_path / "missing_dir" / "path.csv"
    with caplog.at_level(logging.WARNING, logger=log.name):
        text = emit_nonconversion_report(COUNTS, env={VAR: str(path)}, log=log)
    assert text == DETAILED
    assert not path.exists()
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "Non-Conversion Report in CSV Format" in errors[0].getMessage()
    assert not any("saved at" in r.getMessage() for r in caplog.records)


def test_reads_os_environ_and_default_logger(monkeypatch, caplog):
    monkeypatch.setenv(VAR, "1")
    with caplog.at_level(logging.WARNING, logger="tftrt"):
        assert emit_nonconversion_report(COUNTS) == DETAILED
    assert [r.name for r in caplog.records] == ["tftrt.report"]
    monkeypatch.delenv(VAR)
    assert emit_nonconversion_report(COUNTS) == NORMAL
