"""The interpreter: a compiled `Machine` + inputs → a durable, resumable run."""
