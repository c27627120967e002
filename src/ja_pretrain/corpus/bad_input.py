"""Inputs a reader cannot use (an encrypted or image-only PDF, a ZIP that is not an EDINET
document, a file that is not in the stated encoding), and what the run does about them.

`--on-bad-input stop` (the default) ends the run with the one-line reason naming the file;
`--on-bad-input skip` leaves the file out, says so in the log, and lists it with its reason in the
manifest (`counts.bad_inputs`), so that nothing read is dropped without a trace. A file is
rejected whole, before any of its documents are used.
"""

from __future__ import annotations

POLICIES = ("stop", "skip")


class BadInput(Exception):
    """This input cannot be read as what it claims to be; the message says why (not where)."""


def stop_message(path: str, reason: str) -> str:
    return f"{path}: {reason}. To leave such files out and go on with the others, pass --on-bad-input skip"
