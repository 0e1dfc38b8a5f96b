"""Packet sources: capture files (pcapfile.py), live capture (live.py: the capture thread and its
SPSC queue, spscqueue.py; the capture filter's check, bpf.py), and the batch record both hand on (batch.py)."""
