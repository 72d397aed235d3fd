"""Executors: one request shape in, one result shape out, whatever runs the step."""
