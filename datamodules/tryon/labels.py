"""Human-parsing label sets of the try-on datasets and the body parts each one groups.

- VITON-HD ``image-parse-v3``: CIHP's 20 classes (0 background … 19 right shoe), P-mode PNG
  (HR-VITON ``cp_dataset.py``; Gong et al., "Instance-level Human Parsing", ECCV 2018).
- DressCode ``label_maps/*_4.png``: SCHP trained on ATR, 18 classes (``aimagelab/dress-code``
  README, "Human Label Map").
"""

from __future__ import annotations

from dataclasses import dataclass

CIHP_CLASSES = (
    "background",
    "hat",
    "hair",
    "glove",
    "sunglasses",
    "upper_clothes",
    "dress",
    "coat",
    "socks",
    "pants",
    "torso_skin",
    "scarf",
    "skirt",
    "face",
    "left_arm",
    "right_arm",
    "left_leg",
    "right_leg",
    "left_shoe",
    "right_shoe",
)
ATR_CLASSES = (
    "background",
    "hat",
    "hair",
    "sunglasses",
    "upper_clothes",
    "skirt",
    "pants",
    "dress",
    "belt",
    "left_shoe",
    "right_shoe",
    "head",
    "left_leg",
    "right_leg",
    "left_arm",
    "right_arm",
    "bag",
    "scarf",
)


@dataclass(frozen=True)
class LabelSet:
    """Which label ids play which role when the agnostic person is made.

    Args:
        name: label set name.
        classes: class names by id.
        head: ids kept from the person (face, hair, hat, sunglasses).
        lower: ids kept below the garment (legs, pants, skirt, shoes) for an upper garment.
        left_arm, right_arm: arm skin ids.
        garment: ids of the worn garment that the try-on replaces, per category.
    """

    name: str
    classes: tuple[str, ...]
    head: tuple[int, ...]
    lower: tuple[int, ...]
    left_arm: int
    right_arm: int
    garment: dict[str, tuple[int, ...]]

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def _ids(classes: tuple[str, ...], *names: str) -> tuple[int, ...]:
    return tuple(classes.index(n) for n in names)


CIHP = LabelSet(
    "cihp",
    CIHP_CLASSES,
    # HR-VITON keeps labels 4 and 13; hat and hair too, so a tall neck box never eats them
    head=_ids(CIHP_CLASSES, "hat", "hair", "sunglasses", "face"),
    lower=_ids(CIHP_CLASSES, "pants", "skirt", "left_leg", "right_leg", "left_shoe", "right_shoe"),
    left_arm=14,
    right_arm=15,
    garment={
        "upper_body": _ids(CIHP_CLASSES, "upper_clothes", "coat"),
        "lower_body": _ids(CIHP_CLASSES, "pants", "skirt"),
        "dresses": _ids(CIHP_CLASSES, "dress", "upper_clothes", "skirt"),
    },
)
ATR = LabelSet(
    "atr",
    ATR_CLASSES,
    head=_ids(ATR_CLASSES, "hat", "hair", "sunglasses", "head"),
    lower=_ids(ATR_CLASSES, "skirt", "pants", "left_leg", "right_leg", "left_shoe", "right_shoe"),
    left_arm=14,
    right_arm=15,
    garment={
        "upper_body": _ids(ATR_CLASSES, "upper_clothes"),
        "lower_body": _ids(ATR_CLASSES, "skirt", "pants", "belt"),
        "dresses": _ids(ATR_CLASSES, "dress", "upper_clothes", "skirt"),
    },
)
