"""Test traffic and test labs, shared by the test suite (tests/) and the benchmarks (bench/).

Not part of the product (the wheel ships `icmpsensor` only). Nothing here imports tests/ or bench/.

* `craft`: packets, frames and capture files written from the RFCs, and the one internet checksum
  every builder here uses (dpkt's `in_cksum`, independent of the decoder under test);
* `benign_corpus`, `exfil_corpus`: labelled traffic with the exact byte layouts of real ping tools
  and of real exfiltration and tunnel tools;
* `synthmix`: the deterministic synthetic capture of a campus SPAN port (`python -m bench.synth`);
* `synthetic`: decoded packets and notices built by hand, and running a detector over them;
* `decoding`: frames through both decoders, checked to agree;
* `cli`: running `python -m icmpsensor`, and small crafted exfiltration captures for it;
* `netlab`, `livetools`, `fanout_probe`: network-namespace labs for the live tests;
* `systemd_nspawn`: a private systemd booted in systemd-nspawn for the system tests;
* `paths`: where the checkout and the reference captures (../shared/seed) are.
"""
