"""Decoding: link types and constants (linktypes.py), the layers (link.py, ip.py, icmp.py), fragment
reassembly (fragments.py), the decoders (decoder.py: dpkt, the reference; fast.py: struct and C), the
record they produce (packet.py) and their counters (stats.py)."""
