"""Run modes: a packet source (source/) plugged into a topology, over one worker loop.

pipeline.py wires the stages; worker.py is the one worker loop; supervisor.py the one supervisor of
worker processes, which speak messages.py; replay.py and live.py are the two sources' run modes,
each in-process or on N workers; partition.py splits a replay between workers, merge.py merges
their notices, stats.py adds their counters up.
"""
