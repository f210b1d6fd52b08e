"""Loaders for users' own captioning data: the Flickr8k token file and COCO captions JSON.

Both give a :class:`CaptionCorpus`: image paths with their reference captions.

* Flickr8k (``Flickr8k.token.txt``): one caption per line,
  ``<image file>#<k><TAB><caption>``; images in a folder (``Flicker8k_Dataset``
  in the original archive). An optional split file (``Flickr_8k.trainImages.txt``:
  one image file per line) restricts the corpus.
* COCO (``captions_train2017.json``): ``{"images": [{"id", "file_name"}],
  "annotations": [{"image_id", "caption"}]}``; images in a folder.

Every problem a user can fix raises :class:`UserError` naming the file (and
line) and what is wrong. Images are read with :func:`seedlock.core.imaging.read_image`
and letterboxed to the training size, exactly as the server will do.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seedlock.core.errors import UserError
from seedlock.core.imaging import ImageError, letterbox, read_image

IMAGE_DIR_NAMES = ("Flicker8k_Dataset", "Flickr8k_Dataset", "Images", "images")


@dataclass
class CaptionCorpus:
    images: list[Path]
    captions: list[list[str]]

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, idx: list[int] | np.ndarray) -> "CaptionCorpus":
        return CaptionCorpus([self.images[i] for i in idx], [self.captions[i] for i in idx])


def _default_image_dir(annotations: Path) -> Path:
    for name in IMAGE_DIR_NAMES:
        for base in (annotations.parent, annotations.parent.parent):
            if (base / name).is_dir():
                return base / name
    return annotations.parent


def _check_images(corpus: CaptionCorpus, source: Path, image_dir: Path) -> CaptionCorpus:
    if not len(corpus):
        raise UserError(f"{source} holds no captions")
    missing = [p for p in corpus.images if not p.is_file()]
    if missing:
        raise UserError(
            f"{len(missing)} of {len(corpus)} images named in {source} are missing from {image_dir} "
            f"(first: {missing[0].name}); pass the image folder with --images"
        )
    return corpus


def load_flickr8k(token_file: str | Path, image_dir: str | Path | None = None, split_file: str | Path | None = None) -> CaptionCorpus:
    """Read a Flickr8k token file (captions grouped per image, in file order)."""
    token_file = Path(token_file)
    if not token_file.is_file():
        raise UserError(f"caption file not found: {token_file}")
    image_dir = Path(image_dir) if image_dir else _default_image_dir(token_file)
    keep: set[str] | None = None
    if split_file is not None:
        split_file = Path(split_file)
        if not split_file.is_file():
            raise UserError(f"split file not found: {split_file}")
        keep = {line.strip() for line in split_file.read_text().splitlines() if line.strip()}
    by_image: dict[str, list[str]] = {}
    try:
        lines = token_file.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise UserError(f"{token_file} is not UTF-8 text (expected a Flickr8k token file)") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        key, sep, caption = line.partition("\t")
        name = key.split("#", 1)[0].strip()
        if not sep or not name or not caption.strip():
            raise UserError(f"{token_file}:{number}: expected '<image>#<k><TAB><caption>', got {line[:60]!r}")
        if keep is None or name in keep:
            by_image.setdefault(name, []).append(caption.strip())
    corpus = CaptionCorpus([image_dir / n for n in by_image], list(by_image.values()))
    return _check_images(corpus, token_file, image_dir)


def load_coco(captions_json: str | Path, image_dir: str | Path | None = None) -> CaptionCorpus:
    """Read a COCO captions JSON (images in ``images`` order; captions in annotation order)."""
    path = Path(captions_json)
    if not path.is_file():
        raise UserError(f"caption file not found: {path}")
    image_dir = Path(image_dir) if image_dir else _default_image_dir(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) or not isinstance(data.get("annotations"), list):
        raise UserError(f"{path} is not a COCO captions file: need top-level 'images' and 'annotations' lists")
    files: dict[int, str] = {}
    caps: dict[int, list[str]] = {}
    try:
        for img in data["images"]:
            files[int(img["id"])] = str(img["file_name"])
        for k, ann in enumerate(data["annotations"]):
            image_id = int(ann["image_id"])
            if image_id not in files:
                raise UserError(f"{path}: annotation {k} refers to image_id {image_id}, which is not in 'images'")
            caps.setdefault(image_id, []).append(str(ann["caption"]).strip())
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{path}: malformed COCO entry ({type(exc).__name__}: {exc})") from None
    ids = [i for i in files if caps.get(i)]
    corpus = CaptionCorpus([image_dir / files[i] for i in ids], [caps[i] for i in ids])
    return _check_images(corpus, path, image_dir)


def load_caption_file(path: str | Path, image_dir: str | Path | None = None, split_file: str | Path | None = None) -> CaptionCorpus:
    """A ``.json`` file is read as COCO, anything else as a Flickr8k token file."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        if split_file is not None:
            raise UserError("--split applies to Flickr8k token files only")
        return load_coco(path, image_dir)
    return load_flickr8k(path, image_dir, split_file)


def load_images(corpus: CaptionCorpus, size: int) -> np.ndarray:
    """All images, letterboxed to ``size``: uint8 ``(N, size, size, 3)``."""
    out = np.zeros((len(corpus), size, size, 3), dtype=np.uint8)
    for i, p in enumerate(corpus.images):
        try:
            out[i] = letterbox(read_image(p), size)[0]
        except ImageError as exc:
            raise UserError(f"{p}: {exc}") from None
    return out
