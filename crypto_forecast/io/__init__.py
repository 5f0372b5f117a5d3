"""Files: every artifact path, atomic writes, and reading earlier stages' outputs."""
