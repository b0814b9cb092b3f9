"""The fuzz suite's session report: how many cases of each kind ran and how they ended."""

import os

from fuzzkit import format_report, write_report


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    text = format_report()
    if not text:
        return
    terminalreporter.section("fuzz cases")
    terminalreporter.write_line(text)
    path = os.environ.get("PREPROC_FUZZ_REPORT")
    if path:
        write_report(path)
        terminalreporter.write_line(f"fuzz counts written to {path}")
