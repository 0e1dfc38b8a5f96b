"""Packet sources: capture files (pcapfile.py), live capture (live.py: the capture thread and its
SPSC queue, spscqueue.py), and the batch record both hand on (batch.py)."""
