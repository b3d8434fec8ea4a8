"""A delivery day: its stops, planning with the solver, edits, publishing."""
