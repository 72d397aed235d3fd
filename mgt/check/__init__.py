"""Static checks of .mgt machines: source → `CheckResult` (every diagnostic at once).

    check_file(path) -> CheckResult          UsageError only if the path cannot be read
    check_source(text, filename) -> CheckResult
    CheckResult: .machine .diagnostics .source .polecats .formulas .schemas .ok .render()
"""

from mgt.check.checker import check_file, check_source
from mgt.check.result import CheckResult

__all__ = ["CheckResult", "check_file", "check_source"]
