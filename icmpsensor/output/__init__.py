"""Outputs: notice.log (noticelog.py) over rotating whole-line log files (logfile.py), stats.log
(statslog.py), journald (journal.py, and its catalog: catalog.py), standard output (stdout.py),
evidence of alerted flows (evidence.py), and the sink interface they share (sink.py)."""
