"""LiDAR 3-D detection data: KITTI and OpenPCDet custom layouts, single point-cloud files."""
