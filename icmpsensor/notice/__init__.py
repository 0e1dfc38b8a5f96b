"""Notices: the note types (types.py), the record and its Zeek rendering (record.py), its text (text.py),
and the policy that decides what is raised and how loudly (policy.py)."""
