"""`detection.profile`: which detector a pipeline runs."""

from __future__ import annotations

from icmpsensor.config.schema import AllowlistConfig, DetectionConfig
from icmpsensor.detect.flows import FlowDetector
from icmpsensor.detect.original import OriginalDetector
from icmpsensor.detect.standard import Detector


def make_detector(detection: DetectionConfig, allowlist: AllowlistConfig) -> FlowDetector:
    if detection.profile == "original":
        return OriginalDetector(detection, allowlist)
    return Detector(detection, allowlist)
