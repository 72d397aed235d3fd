"""Suite-wide setup: hypothesis's failure reporter imported before warnings become errors."""

from __future__ import annotations

import contextlib
import warnings

# When a property test fails, hypothesis imports its patch writer, which imports libcst,
# which (through mypy_extensions) warns DeprecationWarning. With warnings as errors that
# import fails inside pytest's report hook and turns a plain test failure into an
# INTERNALERROR that hides which test failed. Importing it once here, quietly, caches it.
# (An optional extra: without libcst there is nothing to pre-import.)
with warnings.catch_warnings(), contextlib.suppress(Exception):
    warnings.simplefilter("ignore")
    import hypothesis.extra._patching  # noqa: F401
