"""Presenting results: console text, the HTML kit, report.html and its plots, the web UI tab, compare, the bootbench command."""
