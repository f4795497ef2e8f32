"""Human pose app: PSA heatmap keypoints (COCO) and 2-D→3-D lifting (Human3.6M).

Python API::

    from tessera.apps.pose import load
    estimator = load("pose-psa-tiny")              # registry name or a weights file
    people = estimator("person.jpg", boxes=None)   # people.keypoints: (N, 17, 3) x, y, score
    lifter = load("pose-lifter-tiny")
    joints = lifter(keypoints_over_time, image_size=(w, h))  # (T, 17, 3) metres
"""

from tessera.apps.pose.api import KeypointEstimator, Lifter3D, PoseResult, export, load

__all__ = ["KeypointEstimator", "Lifter3D", "PoseResult", "export", "load"]
