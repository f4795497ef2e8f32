"""The synthetic world: same seed -> byte-identical files; another seed -> other scans; the
written frames read back as KITTI with objects of every class."""

import hashlib
from pathlib import Path

from tessera.datamodules.detection3d.layouts import kitti_refs, load_frame
from tessera.datamodules.detection3d.synth import write_world


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_writes_identical_files(tmp_path):
    sizes = dict(train=2, val=0, test=1, progress=False)
    a = _digests(write_world(tmp_path / "a", seed=3, **sizes))
    b = _digests(write_world(tmp_path / "b", seed=3, **sizes))
    c = _digests(write_world(tmp_path / "c", seed=4, train=1, val=0, test=0, progress=False))
    assert len(a) == 3 * 4 + 2  # velodyne, label_2, calib, image_2 per frame + 2 split files
    assert a == b
    first = "training/velodyne/000000.bin"
    assert (
        a[first] != c[first]
        and a["training/label_2/000000.txt"] != c["training/label_2/000000.txt"]
    )
    frames = [load_frame(r, "kitti", ("Car", "Pedestrian", "Cyclist")) for r in
              kitti_refs(tmp_path / "a", "train") + kitti_refs(tmp_path / "a", "test")]  # fmt: skip
    assert [len(f.points) > 1000 for f in frames] == [True] * 3
    names = {n for f in frames for n in f.labels.name}
    assert {"Car", "Pedestrian", "Cyclist"} <= names
