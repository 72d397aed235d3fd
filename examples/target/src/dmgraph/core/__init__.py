"""The graph DSL core: parser and data model (changes here need a human)."""
