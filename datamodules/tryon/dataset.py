"""``TryOnDataset``: one :class:`~.layouts.TryOnRecord` → the tensors the try-on model uses.

Every image is brought to the working size ``(H, W)`` (512×384 for the VITON-HD tables);
parts whose size differs from the person image are resized with a warning. Missing agnostic
images / masks are derived from the parse map and pose (:mod:`.agnostic`), a garment without a
mask gets one from its background, a missing skeleton image is rendered from the keypoints.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from tessera.datamodules.common import DataError, OnError, load_item
from tessera.datamodules.tryon import io
from tessera.datamodules.tryon.agnostic import agnostic_image, inpainting_mask, prealign_garment
from tessera.datamodules.tryon.keypoints import (
    read_dresscode_json,
    read_openpose_json,
    render_skeleton,
    side_view_faces_away,
)
from tessera.datamodules.tryon.layouts import BACK, SIDE, TryOnRecord

SideView = Literal["skeleton", "front"]


def to_tensor(array: np.ndarray) -> torch.Tensor:
    """uint8 ``(H, W, 3)`` → float ``(3, H, W)`` in [0, 1]; bool ``(H, W)`` → ``(1, H, W)``."""
    if array.dtype == bool:
        return torch.from_numpy(array.astype(np.float32))[None]
    return torch.from_numpy(np.array(array)).permute(2, 0, 1).float() / 255.0


def select_back(view: int, skeleton: np.ndarray, side_view: SideView) -> bool:
    """MV-VTON's hard view selection: back view → back garment; side view → the skeleton
    rule in training (``side_view="skeleton"``), the front garment at test time."""
    if view == BACK:
        return True
    if view == SIDE and side_view == "skeleton":
        return side_view_faces_away(skeleton)
    return False


def load_record(
    r: TryOnRecord,
    size: tuple[int, int],
    side_view: SideView = "front",
    counterfactuals: bool = True,
) -> dict:
    """All tensors of one item at ``size`` = (H, W); ``counterfactuals=False`` leaves out the
    back-to-front image only the view score reads (training batches)."""
    person_image = io.open_image(r.person)
    reference = person_image.size
    scale = np.array([size[1] / reference[0], size[0] / reference[1]], np.float32)
    person = io.read_rgb(r.person, size)
    points = None
    if r.pose_json is not None:
        if r.pose_format == "dresscode":
            points = read_dresscode_json(r.pose_json, reference[1]) * scale
        else:
            points = read_openpose_json(r.pose_json) * scale
    if r.mask is not None:
        mask = io.read_binary_mask(r.mask, size, reference)
    else:
        if r.parse is None or points is None:
            raise DataError(r.person, "no inpainting mask, and no parse map + pose to derive one")
        parse = io.read_parse(r.parse, size, r.labels, reference)
        mask = inpainting_mask(parse, points, r.labels, r.category)
    if not mask.any():
        raise DataError(r.mask or r.parse, "the inpainting mask is empty")
    if r.agnostic is not None:
        agnostic = io.read_rgb(r.agnostic, size, reference)
        agnostic = agnostic_image(agnostic, mask)  # same grey region as the mask in use
    else:
        agnostic = agnostic_image(person, mask)
    if r.skeleton is not None:
        skeleton = io.read_rgb(r.skeleton, size, reference)
    elif points is not None:
        skeleton = np.asarray(render_skeleton(points, size))
    else:
        raise DataError(r.person, "no skeleton image and no keypoints to render one")

    def garment(path, mask_path):
        image = io.read_rgb(path, size)
        if mask_path is not None:
            return image, io.read_binary_mask(mask_path, size, io.open_image(path).size)
        return image, io.derive_garment_mask(image, path)

    front, front_mask = garment(r.garment_front, r.garment_front_mask)
    if r.garment_back is not None:
        back, back_mask = garment(r.garment_back, r.garment_back_mask)
    else:  # single-view datasets: the one shop image serves both views
        back, back_mask = front, front_mask
    sk_front = io.read_rgb(r.skeleton_front, size) if r.skeleton_front else skeleton
    sk_back = io.read_rgb(r.skeleton_back, size) if r.skeleton_back else skeleton
    use_back = select_back(r.view, skeleton, side_view)
    pre_front = prealign_garment(agnostic, mask, front, front_mask)
    pre_back = prealign_garment(agnostic, mask, back, back_mask)
    if r.prealigned is not None:  # the dataset's own pre-warped garment (MVG warp_feat)
        chosen = io.read_rgb(r.prealigned, size, reference)
        chosen = np.where(mask[..., None], chosen, agnostic)
    else:
        chosen = pre_back if use_back else pre_front
    t = to_tensor
    sample = {
        "item_id": r.item_id,
        "person": t(person),
        "agnostic": t(agnostic),
        "mask": t(mask),
        "garment_front": t(front),
        "garment_back": t(back),
        "garment_front_mask": t(front_mask),
        "garment_back_mask": t(back_mask),
        "prealigned": t(chosen),
        "prealigned_front": t(pre_front),
        "prealigned_back": t(pre_back),
        "skeleton": t(skeleton),
        "skeleton_front": t(sk_front),
        "skeleton_back": t(sk_back),
        "view": r.view,
        "use_back": use_back,
        "paired": r.paired,
    }
    if counterfactuals:
        sample["has_counterfactual"] = r.counterfactual is not None
        sample["counterfactual"] = t(
            io.read_rgb(r.counterfactual, size, reference)
            if r.counterfactual is not None
            else np.zeros_like(person)
        )
    return sample


class TryOnDataset(Dataset):
    """Args:
    records: items from :func:`~.layouts.list_records`.
    size: working size ``(H, W)``.
    side_view: hard-selection rule for side views (``skeleton`` in training, ``front`` at
        test time, as MV-VTON does).
    on_error: ``raise`` or ``skip`` (a :class:`SkippedItem` replaces the sample).
    counterfactuals: read each item's counterfactual image (or a zeros placeholder) for the
        back-view score; off for training, which never scores.
    """

    def __init__(
        self,
        records: list[TryOnRecord],
        size=(128, 96),
        side_view: SideView = "front",
        on_error: OnError = "raise",
        counterfactuals: bool = True,
    ):
        self.records = records
        self.counterfactuals = counterfactuals
        self.size = tuple(size)
        self.side_view = side_view
        self.on_error = on_error

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int):
        r = self.records[i]
        return load_item(
            r.item_id,
            r.person,
            lambda: load_record(r, self.size, self.side_view, self.counterfactuals),
            self.on_error,
        )


def save_rgb(path, image: torch.Tensor) -> None:
    """``(3, H, W)`` float [0, 1] → PNG (atomically)."""
    from tessera.datamodules.common import atomic_write

    array = (image.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
    with atomic_write(path) as tmp:
        Image.fromarray(array).save(tmp)
