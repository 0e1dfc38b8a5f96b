"""icmpsensor: a network sensor that reports data exfiltration and tunnelling over ICMP."""

__version__ = "0.1.0"
