from icmpsensor.cli import entry_point

entry_point()
