"""Keys are masked wherever text leaves the process."""

import logging

from bootbench import secrets


def test_registered_keys_and_half_masked_keys_quoted_by_a_service_are_masked():
    secrets.register("sk-proj-abcdef123456wxyz")
    text = "key sk-proj-abcdef123456wxyz rejected: Incorrect API key provided: sk-proj-ab**************wxyz."
    cleaned = secrets.redact(text)
    assert "abcdef" not in cleaned and "wxyz" not in cleaned
    assert cleaned == "key *** rejected: Incorrect API key provided: ***."


def test_the_log_filter_masks_messages_and_tracebacks():
    secrets.register("gm-SECRET-9876")
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "using %s", ("gm-SECRET-9876",), None)
    try:
        raise RuntimeError("boom gm-SECRET-9876")
    except RuntimeError:
        import sys

        record.exc_info = sys.exc_info()
    assert secrets.RedactingFilter().filter(record)
    assert "gm-SECRET-9876" not in record.getMessage()
    assert "boom ***" in record.getMessage()
