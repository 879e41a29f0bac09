"""Presenting results: text, HTML report, plots, web UI tab, progress line, compare, the bootbench command."""
