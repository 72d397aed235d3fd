"""A pattern's type and grouping key → a fingerprint that names the same problem on any day.

    pattern_fingerprint("slow_llm", "node:dmScene")   # 'slow_llm:4be7d1a0c2f95e31'

Report ids (`slow-llm-dmscene`) are made for reading: slugs cut at 40
characters, with a hash suffix only when two ids of one report collide, so one
problem may get different ids on different days. A fingerprint depends on the
rule and the full grouping key only, never on counts, times, severities or
sample text, so yesterday's pattern and today's are told to be the same one:

- slow_llm, token_bloat — `node:NAME`, or `model:NAME` for calls without a node;
- failed_transition — `FROM` and `TO`, joined by a NUL character;
- repeated_error — the message template (digits, hex and uuids masked);
- dead_path — the node name.

Format: `TYPE:` + the first 16 hex digits of SHA-256 over `TYPE NUL KEY`
(UTF-8; lone surrogates kept as such). Changing it would orphan every
fingerprint recorded in pull requests: keep it.
"""

from __future__ import annotations

import hashlib
import re

from mgt.analyze.rules import Finding

__all__ = ["FINGERPRINT_PATTERN", "finding_fingerprint", "pattern_fingerprint"]

FINGERPRINT_PATTERN = re.compile(r"^[a-z_]+:[0-9a-f]{16}$")


def pattern_fingerprint(pattern_type: str, key: str) -> str:
    """The fingerprint of the pattern of `pattern_type` (a rule name) grouped by `key`."""
    digest = hashlib.sha256(
        f"{pattern_type}\x00{key}".encode("utf-8", "surrogatepass")
    ).hexdigest()
    return f"{pattern_type}:{digest[:16]}"


def finding_fingerprint(finding: Finding) -> str:
    """The fingerprint of an analyzer finding."""
    return pattern_fingerprint(finding.type, finding.key)
