"""A machine run as a Temporal workflow: the decision core as workflow code, attempts as
activities run by `mgt worker` (see docs/architecture.md, "Engines")."""
