"""pinpoint: find tiny infrared targets as points.

    import pinpoint
    detector = pinpoint.load("runs/train/best.pt")
    points = detector.predict("frame.png")      # Points: .xy (pixels), .score, .xy_norm
"""

from pinpoint.points import Points
from pinpoint.predict import Detector, load

__all__ = ["Detector", "Points", "load"]
__version__ = "0.1.0"
