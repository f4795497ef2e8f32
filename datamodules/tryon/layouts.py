"""The try-on dataset layouts, read as released, into one list of :class:`TryOnRecord`.

- **VITON-HD** (Choi et al., CVPR 2021; layout as in HR-VITON's ``cp_dataset.py``)::

    <root>/{train,test}_pairs.txt            "person.jpg cloth.jpg" per line (unpaired pairs)
    <root>/<split>/image/<id>.jpg            person
    <root>/<split>/cloth/<id>.jpg, cloth-mask/<id>.jpg
    <root>/<split>/image-parse-v3/<id>.png   CIHP ids, P mode
    <root>/<split>/openpose_json/<id>_keypoints.json, openpose_img/<id>_rendered.png
    <root>/<split>/agnostic-v3.2/<id>.jpg    [optional; derived from parse + pose if absent]
    <root>/<split>/agnostic-mask/<id>_mask.png  [optional, StableVITON; derived if absent]
    (image-parse-agnostic-v3.2, image-densepose: read by other methods, not needed here)

  ``pairs="paired"`` tries each person on its own cloth (same file name), ``"unpaired"`` on
  the cloth its pairs-file line names.
- **DressCode** (Morelli et al., ECCV 2022; ``aimagelab/dress-code`` ``data/dataset.py``)::

    <root>/{upper_body,lower_body,dresses}/images/<id>_0.jpg (person), <id>_1.jpg (garment)
    <root>/<category>/keypoints/<id>_2.json, label_maps/<id>_4.png (ATR ids),
    skeletons/<id>_5.jpg, dense/<id>_5.png, masks/<id>_1.png [optional]
    <root>/<category>/{train_pairs.txt, test_pairs_paired.txt, test_pairs_unpaired.txt}
    (or the same files at <root>, LaDI-VTON's merged copies)
- **MVG** (Wang et al., MV-VTON, AAAI 2025; ``ldm/data/cp_dataset_mv_{paired,unpaired}.py``)::

    <root>/<split>/{image-wo-bg,cloth,cloth-mask,skeletons,inpaint_mask}/<id>_<view>/
        three images each; sorted: [front, target person, back]
    <root>/<split>/warp_feat/<id>_<view>.jpg (warp_feat_unpair/ for unpaired)
    <root>/unpaired.txt   "person_id cloth_id"
    view: 1 front, 2 side, 3 back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tessera.datamodules.common import DataError
from tessera.datamodules.tryon.labels import ATR, CIHP, LabelSet

Layout = Literal["auto", "vitonhd", "dresscode", "mvg"]
Pairs = Literal["paired", "unpaired"]
DRESSCODE_CATEGORIES = ("upper_body", "lower_body", "dresses")
FRONT, SIDE, BACK = 1, 2, 3


@dataclass
class TryOnRecord:
    """Where one try-on item's files are (None: absent, derived when loaded)."""

    item_id: str
    person: Path
    garment_front: Path
    garment_back: Path | None = None
    garment_front_mask: Path | None = None
    garment_back_mask: Path | None = None
    agnostic: Path | None = None
    mask: Path | None = None
    parse: Path | None = None
    labels: LabelSet = CIHP
    pose_json: Path | None = None
    pose_format: Literal["openpose", "dresscode"] = "openpose"
    skeleton: Path | None = None
    skeleton_front: Path | None = None
    skeleton_back: Path | None = None
    prealigned: Path | None = None
    counterfactual: Path | None = None  # the target worn back to front (synthetic world only)
    view: int = FRONT
    category: str = "upper_body"
    paired: bool = True
    extra: dict = field(default_factory=dict)


def detect_layout(root: str | Path) -> str:
    """``vitonhd``, ``dresscode`` or ``mvg`` from the folders under ``root``."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: dataset folder does not exist")
    if any((root / c / "images").is_dir() for c in DRESSCODE_CATEGORIES):
        return "dresscode"
    for split in sorted(p for p in root.iterdir() if p.is_dir()):
        if (split / "image-wo-bg").is_dir():
            return "mvg"
        if (split / "image").is_dir() and (split / "cloth").is_dir():
            return "vitonhd"
    raise FileNotFoundError(
        f"{root}: not a VITON-HD (<split>/image, <split>/cloth), DressCode "
        f"(upper_body/images …) or MVG (<split>/image-wo-bg) dataset folder"
    )


def list_records(
    root,
    split: str,
    layout: Layout = "auto",
    pairs: Pairs = "paired",
    categories=DRESSCODE_CATEGORIES,
) -> list[TryOnRecord]:
    """Every item of ``split`` in ``root``, in pairs-file / folder order."""
    root = Path(root)
    layout = detect_layout(root) if layout == "auto" else layout
    if pairs not in ("paired", "unpaired"):
        raise ValueError(f"pairs must be 'paired' or 'unpaired', got {pairs!r}")
    if layout == "vitonhd":
        return vitonhd_records(root, split, pairs)
    if layout == "dresscode":
        return dresscode_records(root, split, pairs, categories)
    if layout == "mvg":
        return mvg_records(root, split, pairs)
    raise ValueError(f"unknown layout {layout!r} (vitonhd, dresscode, mvg or auto)")


def _pair_lines(path: Path) -> list[list[str]]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: pairs file is missing")
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    for n, row in enumerate(rows, 1):
        if len(row) < 2:
            raise DataError(path, f"line {n} has {len(row)} fields, expected 'person cloth'")
    return rows


def _optional(path: Path) -> Path | None:
    return path if path.is_file() else None


def vitonhd_records(root: Path, split: str, pairs: Pairs) -> list[TryOnRecord]:
    base = root / split
    if not (base / "image").is_dir():
        raise FileNotFoundError(f"{base / 'image'}: VITON-HD split folder is missing")
    records = []
    for person, cloth in ((r[0], r[1]) for r in _pair_lines(root / f"{split}_pairs.txt")):
        cloth = person if pairs == "paired" else cloth
        p, c = Path(person).stem, Path(cloth).stem
        records.append(
            TryOnRecord(
                item_id=f"{p}___{c}",
                person=base / "image" / person,
                garment_front=base / "cloth" / cloth,
                garment_front_mask=_optional(base / "cloth-mask" / cloth),
                agnostic=_optional(base / "agnostic-v3.2" / f"{p}.jpg"),
                mask=_optional(base / "agnostic-mask" / f"{p}_mask.png"),
                parse=base / "image-parse-v3" / f"{p}.png",
                labels=CIHP,
                pose_json=base / "openpose_json" / f"{p}_keypoints.json",
                skeleton=_optional(base / "openpose_img" / f"{p}_rendered.png"),
                paired=pairs == "paired",
            )
        )
    return records


def dresscode_records(root: Path, split: str, pairs: Pairs, categories) -> list[TryOnRecord]:
    name = "train_pairs.txt" if split == "train" else f"{split}_pairs_{pairs}.txt"
    records = []
    for category in categories:
        base = root / category
        if not (base / "images").is_dir():
            continue
        pairs_file = base / name if (base / name).is_file() else root / name
        for row in _pair_lines(pairs_file):
            person, cloth = row[0], row[1]
            if not (base / "images" / person).is_file() and pairs_file.parent == root:
                continue  # the merged top-level file lists every category
            p = person.removesuffix("_0.jpg")
            records.append(
                TryOnRecord(
                    item_id=f"{Path(person).stem}___{Path(cloth).stem}",
                    person=base / "images" / person,
                    garment_front=base / "images" / cloth,
                    garment_front_mask=_optional(base / "masks" / cloth.replace(".jpg", ".png")),
                    parse=base / "label_maps" / f"{p}_4.png",
                    labels=ATR,
                    pose_json=base / "keypoints" / f"{p}_2.json",
                    pose_format="dresscode",
                    skeleton=_optional(base / "skeletons" / f"{p}_5.jpg"),
                    category=category,
                    paired=pairs == "paired" or split == "train",
                )
            )
    if not records:
        raise FileNotFoundError(f"{root}: no DressCode pairs for split {split!r} ({name})")
    return records


def _three(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []
    if len(files) != 3:
        raise DataError(
            folder, f"holds {len(files)} images, expected 3 (front, target person, back)"
        )
    return files


def mvg_records(root: Path, split: str, pairs: Pairs) -> list[TryOnRecord]:
    base = root / split
    if not (base / "image-wo-bg").is_dir():
        raise FileNotFoundError(f"{base / 'image-wo-bg'}: MVG split folder is missing")
    cloth_of = {}
    if pairs == "unpaired":
        cloth_of = {r[0]: r[1] for r in _pair_lines(root / "unpaired.txt")}
    records = []
    for folder in sorted(p.name for p in (base / "image-wo-bg").iterdir() if p.is_dir()):
        person_id, _, view = folder.rpartition("_")
        if view not in ("1", "2", "3"):
            raise DataError(base / "image-wo-bg" / folder, "folder name must be <id>_<1|2|3>")
        names = [p.name for p in _three(base / "image-wo-bg" / folder)]
        c_folder = folder
        if pairs == "unpaired":
            if person_id not in cloth_of:
                raise DataError(root / "unpaired.txt", f"no cloth listed for person {person_id}")
            c_folder = f"{cloth_of[person_id]}_{view}"
        cloth = _three(base / "cloth" / c_folder)
        cloth_mask = [_optional(base / "cloth-mask" / c_folder / c.name) for c in cloth]
        skeletons = [base / "skeletons" / c_folder / n for n in (cloth[0].name, cloth[2].name)]
        warp = "warp_feat" if pairs == "paired" else "warp_feat_unpair"
        records.append(
            TryOnRecord(
                item_id=f"{folder}___{c_folder}",
                person=base / "image-wo-bg" / folder / names[1],
                garment_front=cloth[0],
                garment_back=cloth[2],
                garment_front_mask=cloth_mask[0],
                garment_back_mask=cloth_mask[2],
                mask=base / "inpaint_mask" / folder / names[1],
                skeleton=base / "skeletons" / folder / names[1],
                skeleton_front=_optional(skeletons[0]),
                skeleton_back=_optional(skeletons[1]),
                prealigned=_optional(base / warp / f"{folder}.jpg"),
                counterfactual=(
                    _optional(base / "counterfactual" / folder / names[1])
                    if pairs == "paired"
                    else None
                ),
                view=int(view),
                paired=pairs == "paired",
            )
        )
    return records
