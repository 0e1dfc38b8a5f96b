"""The journal catalog: every MESSAGE_ID's explanation, for `journalctl -x`.

    python -m icmpsensor.output.catalog > packaging/journal-catalog/icmpsensor.catalog

renders it from the note table (notice/types.py) and the operational messages (output/journal.py);
a test holds the shipped file equal to it.
"""

from __future__ import annotations

import sys

from icmpsensor.notice.types import NOTE_TYPES
from icmpsensor.output.journal import OPERATIONAL_MESSAGES

HEADER = """\
# icmpsensor: explanations of the journal entries of the icmpsensor sensor daemon.
#
# Installed to /usr/lib/systemd/catalog/ (or /usr/local/lib/systemd/catalog/) and
# compiled with `journalctl --update-catalog`; shown by `journalctl -x` and
# `journalctl --catalog`. Rendered by `python -m icmpsensor.output.catalog` from the
# note table (icmpsensor/notice/types.py) and icmpsensor/output/journal.py.
# @FIELD@ is replaced by the entry's field of that name.
"""
DOCUMENTATION = "man:icmpsensor(8)"


def render() -> str:
    entries = [(n.message_id, n.subject, n.body) for n in NOTE_TYPES]
    entries += [(m.message_id, m.subject, m.body) for m in OPERATIONAL_MESSAGES]
    parts = [HEADER]
    for message_id, subject, body in entries:
        parts.append(f"-- {message_id}\nSubject: {subject}\nDefined-By: icmpsensor\n"
                     f"Documentation: {DOCUMENTATION}\n\n{body}")
    return "\n".join(parts)


if __name__ == "__main__":
    sys.stdout.write(render())
