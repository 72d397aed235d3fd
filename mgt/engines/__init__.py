"""Run engines other than the file journal: a machine + inputs → a run driven elsewhere."""
