"""mgt — the Micro-Gas Town runtime: .mgt pipelines → checked state machines → durable runs."""

__version__ = "0.1.0"
__all__ = ["__version__"]
