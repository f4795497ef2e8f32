"""A searchable video index: per-video frame features on disk, and text search over them.

Layout of an index folder::

    INDEX/
      items/<id-slug>-<hash>.safetensors   frame features (F, C) [+ audio tokens, mask] of one
                                           video; metadata: id, path, size, mtime, model
      features.safetensors                 all of them stacked, for search (rebuilt by build())
      manifest.json                        ids, paths, model fingerprint, shapes

Items are written atomically one by one, so an interrupted ``index`` run resumes where it
stopped, and adding videos to a folder embeds only the new (or changed) ones. The model
fingerprint (sha256 of the checkpoint) is checked, so features of two models never mix.

Search (X-Pool needs one pooling per text-video pair, too slow over a large index):

- ``exact``: X-Pool scores of the query against every video;
- ``two_stage``: a shortlist of K videos by the mean-pooled embeddings (faiss inner-product
  index), then X-Pool re-ranks the shortlist;
- ``auto``: exact when the index has at most K videos, else two-stage.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from tessera.datamodules.common import atomic_write, atomic_write_text

FORMAT = 1
KEYS = ("frames", "audio", "audio_mask")


def item_name(video_id: str) -> str:
    """File-system-safe, collision-free file name of a video id."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", video_id)[-80:]
    return f"{slug}-{hashlib.sha1(video_id.encode()).hexdigest()[:10]}.safetensors"


def file_stamp(path: str | Path) -> dict:
    stat = Path(path).stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


@dataclass
class IndexData:
    """Stacked features of an index: ids ``N``, paths, frames ``(N, F, C)``, mean ``(N, C)``."""

    ids: list[str]
    paths: list[str]
    frames: torch.Tensor
    mean: torch.Tensor
    audio: torch.Tensor | None = None
    audio_mask: torch.Tensor | None = None


class VideoIndex:
    """Args:
    root: index folder (created).
    model_id: fingerprint of the model whose features it holds (checked on every write).
    """

    def __init__(self, root: str | Path, model_id: str):
        self.root = Path(root)
        self.model_id = model_id
        self.items_dir = self.root / "items"
        manifest = self.root / "manifest.json"
        if manifest.is_file():
            stored = json.loads(manifest.read_text()).get("model_id")
            if stored != model_id:
                raise ValueError(
                    f"{self.root}: index was built with model {stored}, not {model_id}; "
                    "use a new --out folder for another checkpoint"
                )

    def item_path(self, video_id: str) -> Path:
        return self.items_dir / item_name(video_id)

    def is_current(self, video_id: str, path: str | Path) -> bool:
        """True when ``video_id`` is stored from the same file (size, mtime) and model."""
        from safetensors import safe_open

        item = self.item_path(video_id)
        if not item.is_file():
            return False
        try:
            with safe_open(str(item), "pt") as f:
                meta = f.metadata() or {}
        except Exception:  # a damaged item is embedded again
            return False
        stamp = file_stamp(path)
        return (meta.get("model_id") == self.model_id and meta.get("video_id") == video_id
                and meta.get("size") == str(stamp["size"])
                and meta.get("mtime_ns") == str(stamp["mtime_ns"]))  # fmt: skip

    def add(self, video_id: str, path: str | Path, features: dict[str, torch.Tensor]) -> Path:
        """Store one video's features (``frames (F, C)`` [+ ``audio``, ``audio_mask``])."""
        from safetensors.torch import save_file

        tensors = {k: features[k].detach().cpu().contiguous() for k in KEYS if k in features}
        stamp = file_stamp(path)
        meta = {"video_id": video_id, "path": str(Path(path).resolve()), "model_id": self.model_id,
                "size": str(stamp["size"]), "mtime_ns": str(stamp["mtime_ns"])}  # fmt: skip
        item = self.item_path(video_id)
        with atomic_write(item) as tmp:
            save_file(tensors, str(tmp), metadata=meta)
        return item

    def build(self) -> dict:
        """Stack every item into ``features.safetensors`` and write ``manifest.json``."""
        from safetensors import safe_open
        from safetensors.torch import save_file

        files = sorted(self.items_dir.glob("*.safetensors")) if self.items_dir.is_dir() else []
        ids, paths, stacks = [], [], {k: [] for k in KEYS}
        for file in files:
            with safe_open(str(file), "pt") as f:
                meta = f.metadata() or {}
                if meta.get("model_id") != self.model_id:
                    continue
                ids.append(meta["video_id"])
                paths.append(meta["path"])
                for key in f.keys():  # noqa: SIM118 (safe_open has no __iter__)
                    stacks[key].append(f.get_tensor(key))
        if not ids:
            raise ValueError(f"{self.root}: the index holds no videos")
        tensors = {k: torch.stack(v) for k, v in stacks.items() if v}
        tensors["mean"] = F.normalize(F.normalize(tensors["frames"], dim=-1).mean(1), dim=-1)
        with atomic_write(self.root / "features.safetensors") as tmp:
            save_file(tensors, str(tmp))
        manifest = {
            "format": FORMAT,
            "model_id": self.model_id,
            "num_videos": len(ids),
            "frames_shape": list(tensors["frames"].shape[1:]),
            "videos": [{"id": i, "path": p} for i, p in zip(ids, paths, strict=True)],
        }
        atomic_write_text(self.root / "manifest.json", json.dumps(manifest, indent=1))
        return manifest

    @staticmethod
    def load(root: str | Path) -> tuple[IndexData, dict]:
        """Stacked features and manifest of a built index."""
        from safetensors.torch import load_file

        root = Path(root)
        manifest_path = root / "manifest.json"
        if not manifest_path.is_file():
            raise FileNotFoundError(
                f"{root}: not a video index (no manifest.json); build one with "
                "`tessera retrieval index --videos DIR --out INDEX --checkpoint NAME`"
            )
        manifest = json.loads(manifest_path.read_text())
        tensors = load_file(str(root / "features.safetensors"))
        videos = manifest["videos"]
        data = IndexData(
            [v["id"] for v in videos], [v["path"] for v in videos], tensors["frames"],
            tensors["mean"], tensors.get("audio"), tensors.get("audio_mask"),
        )  # fmt: skip
        return data, manifest


def shortlist(mean: torch.Tensor, query: torch.Tensor, k: int) -> torch.Tensor:
    """Indices ``(k,)`` of the videos whose mean-pooled embedding is closest to ``query (C,)``
    (faiss exact inner-product index)."""
    import faiss

    index = faiss.IndexFlatIP(mean.shape[1])
    index.add(mean.float().contiguous().numpy())
    q = F.normalize(query.float(), dim=-1)[None].contiguous().numpy()
    _, found = index.search(q, min(k, mean.shape[0]))
    return torch.from_numpy(found[0]).long()


def search_scores(
    model, text: torch.Tensor, data: IndexData, mode: str = "auto", k: int = 100,
    video_chunk: int = 256,
) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Candidate indices and their scores for one query embedding ``text (C,)``.

    Args:
        model: a :class:`~tessera.apps.retrieval.model.RetrievalModel`.
        mode: ``exact``, ``two_stage`` or ``auto`` (exact when N <= k).
        k: shortlist size of the two-stage search.

    Returns:
        candidate indices ``(M,)`` into ``data`` and their similarities ``(M,)``.
    """
    if mode not in ("auto", "exact", "two_stage"):
        raise ValueError(f"mode must be auto, exact or two_stage, got {mode!r}")
    n = len(data.ids)
    if mode == "auto":
        mode = "exact" if n <= k or model.pooling == "mean" else "two_stage"
    candidates = torch.arange(n) if mode == "exact" else shortlist(data.mean, text, k)
    audio = None if data.audio is None else data.audio[candidates]
    mask = None if data.audio_mask is None else data.audio_mask[candidates]
    scores = model.similarity_matrix(text[None], data.frames[candidates], audio, mask,
                                     video_chunk=video_chunk)[0]  # fmt: skip
    return candidates, scores
