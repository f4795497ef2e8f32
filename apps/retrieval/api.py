"""Python API: load a checkpoint, embed videos, rank videos for a sentence, search an index.

from tessera.apps.retrieval import load
retriever = load("path/to/model.safetensors")         # or a registry name / .ckpt
hits = retriever("a red circle moves left", ["a.mp4", "b.mp4"])  # best first
hits[0]  # {"rank": 1, "video": "b.mp4", "score": 0.41, "frame_attention": [...]}
retriever.search("a red circle moves left", "my-index", top_k=5)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from tqdm.auto import tqdm

from tessera.apps.common.checkpoints import sha256_of
from tessera.apps.common.weights import read_weights, save_weights
from tessera.apps.retrieval.index import VideoIndex, search_scores
from tessera.apps.retrieval.module import RetrievalModule
from tessera.datamodules.common import DataError
from tessera.datamodules.retrieval.dataset import VideoTextDataset
from tessera.datamodules.retrieval.layouts import VideoItem, list_videos

TASK = "retrieval"


class VideoRetriever:
    """A trained retrieval model with its frame/audio settings.

    Args:
        module: the :class:`RetrievalModule` (eval mode).
        model_id: fingerprint stored in indexes built with it.
    """

    def __init__(self, module: RetrievalModule, model_id: str = "unsaved"):
        self.module = module.eval()
        self.model = module.model
        self.model_id = model_id
        hp = module.hparams
        self.num_frames = hp.num_frames
        self.image_size = self.model.image_size
        self.audio_frames, self.n_mels = hp.audio_frames, hp.n_mels

    @property
    def device(self) -> torch.device:
        return self.module.device

    def dataset(self, items: Sequence[VideoItem], on_error: str = "raise") -> VideoTextDataset:
        """Evaluation-mode samples (middle frame per interval, centre crop) of ``items``."""
        return VideoTextDataset(
            items, self.num_frames, self.image_size, train=False, audio=self.model.uses_audio,
            audio_frames=self.audio_frames, n_mels=self.n_mels, on_error=on_error,
        )  # fmt: skip

    @torch.no_grad()
    def embed_video(self, path: str | Path) -> dict[str, torch.Tensor]:
        """Frame features ``frames (F, C)`` (+ ``audio (A, C)``, ``audio_mask (A,)``) of one
        video file; raises :class:`DataError` naming the file when it cannot be decoded."""
        sample = self.dataset([VideoItem(Path(path).stem, Path(path))])[0]
        batch = {k: v[None].to(self.device) for k, v in sample.items()
                 if isinstance(v, torch.Tensor)}  # fmt: skip
        return {k: v[0].float().cpu() if v.is_floating_point() else v[0].cpu()
                for k, v in self.module.encode_videos(batch).items()}  # fmt: skip

    @torch.no_grad()
    def encode_text(self, texts: str | Sequence[str]) -> torch.Tensor:
        """``(T, C)`` text embeddings; an empty text raises ``ValueError``, a text longer
        than the context length is truncated with a warning."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        return self.module.encode_texts(texts).float().cpu()

    @torch.no_grad()
    def __call__(self, query: str, videos: Sequence[str | Path]) -> list[dict]:
        """Rank ``videos`` (files) for ``query``, best first, with X-Pool frame attention."""
        feats = [self.embed_video(v) for v in videos]
        stacked = {k: torch.stack([f[k] for f in feats]) for k in feats[0]}
        text = self.encode_text(query)
        scores = self.model.similarity(text, stacked["frames"], stacked.get("audio"),
                                       stacked.get("audio_mask"))[0]  # fmt: skip
        attention = self.model.frame_attention(text, stacked["frames"])[:, 0]  # (V, F)
        order = scores.argsort(descending=True, stable=True)
        return [
            {"rank": r + 1, "video": str(videos[i]), "score": float(scores[i]),
             "frame_attention": attention[i].tolist()}
            for r, i in enumerate(order.tolist())
        ]  # fmt: skip

    # -- indexes ---------------------------------------------------------------------------------
    @torch.no_grad()
    def index(
        self,
        videos: str | Path | Sequence[VideoItem],
        out: str | Path,
        progress: Callable[[int, int], None] | None = None,
    ) -> dict:
        """Embed a folder (or items) into the index at ``out``; only new or changed videos
        are embedded. Unreadable videos are skipped and listed. Returns a summary."""
        items = list_videos(videos) if isinstance(videos, str | Path) else list(videos)
        index = VideoIndex(out, self.model_id)
        todo = [i for i in items if not index.is_current(i.video_id, i.path)]
        skipped = []
        for n, item in enumerate(
            tqdm(todo, desc="index", unit="video", disable=progress is not None)
        ):
            try:
                index.add(item.video_id, item.path, self.embed_video(item.path))
            except DataError as err:
                skipped.append(
                    {"item_id": item.video_id, "path": str(item.path), "reason": str(err)}
                )
            if progress is not None:
                progress(n + 1, len(todo))
        manifest = index.build()
        return {"index": str(out), "videos": manifest["num_videos"],
                "embedded": len(todo) - len(skipped), "already_indexed": len(items) - len(todo),
                "skipped": skipped}  # fmt: skip

    @torch.no_grad()
    def search(
        self, query: str, index: str | Path, top_k: int = 10, mode: str = "auto",
        shortlist: int = 100,
    ) -> list[dict]:  # fmt: skip
        """The ``top_k`` videos of the index for ``query`` with scores and frame attention."""
        data, manifest = VideoIndex.load(index)
        if manifest["model_id"] != self.model_id:
            raise ValueError(f"{index}: built with model {manifest['model_id']}, not this one "
                             f"({self.model_id}); re-index with this checkpoint")  # fmt: skip
        text = self.encode_text(query)[0]
        candidates, scores = search_scores(self.model, text, data, mode, shortlist)
        order = scores.argsort(descending=True, stable=True)[:top_k]
        chosen = candidates[order]
        attention = self.model.frame_attention(text[None], data.frames[chosen])[:, 0]
        return [
            {"rank": r + 1, "video_id": data.ids[i], "path": data.paths[i],
             "score": float(scores[o]), "frame_attention": attention[r].tolist()}
            for r, (i, o) in enumerate(zip(chosen.tolist(), order.tolist(), strict=True))
        ]  # fmt: skip


def load(name_or_path: str | Path, device: str | torch.device = "cpu") -> VideoRetriever:
    """A :class:`VideoRetriever` from a registry name, a ``.safetensors`` written by
    :func:`save_weights`, or a Lightning ``.ckpt`` of this app (nothing is downloaded)."""
    weights = read_weights(name_or_path, TASK)
    module = weights.build(RetrievalModule, pretrained=None).to(device)
    return VideoRetriever(module, sha256_of(weights.path)[:16])


def export(module: RetrievalModule, path: str | Path) -> Path:
    """Save a trained module as a self-contained safetensors file for :func:`load`."""
    return save_weights(
        path,
        module,
        task=TASK,
        data={"num_frames": module.hparams.num_frames, "image_size": module.model.image_size},
    )
