"""Detection: a pure core that turns decoded ICMP packets and a clock into notices.

No I/O and no threads: `process()` takes one IcmpPacket, `advance()` moves the clock (packet time
when replaying files, wall time when live), `flush()` ends the input; each returns the notices that
became due. flows.py holds the flow table both profiles share (the one clock, sweep, eviction,
pending requests); standard.py and original.py the two profiles (profile.py picks one); novelty.py,
fingerprints.py, tunnels.py and nonecho.py what the standard profile measures with.
"""
