"""Human pose data: COCO keypoints (top-down crops + heatmap codecs) and Human3.6M-style
2-D/3-D sequences for lifting (VideoPose3D's npz files)."""
