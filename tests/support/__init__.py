"""Helpers shared by bootbench's tests: real processes, a browser, the fault matrix, a recording proxy."""
