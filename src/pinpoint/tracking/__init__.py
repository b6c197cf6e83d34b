"""Points per frame -> tracks, in three parts:

- tracker.py: the point tracker (a Kalman filter per track from filterpy, one-to-one assignment
  from SciPy), which knows nothing of files;
- runner.py: `pinpoint track`, detector and tracker over each video of a source, and its outputs;
- scoring.py: `pinpoint eval --track`, the tracks against per-frame labels (py-motmetrics, TrackEval).
"""

from pinpoint.tracking.tracker import PointTracker, TrackedPoint, TrackerSettings, track_points

__all__ = ["PointTracker", "TrackedPoint", "TrackerSettings", "track_points"]
