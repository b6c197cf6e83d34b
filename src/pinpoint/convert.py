"""Other label formats in and out: target masks to point labels, and COCO keypoints both ways.

Public infrared datasets ship per-pixel target masks; annotation tools (CVAT, Label Studio and
others) speak COCO keypoints. pinpoint's own format is one text file of normalised points per
image (see pinpoint.data.labels), so these converters are the bridge.

Pixel conventions, the one place where formats disagree:
- pinpoint: the centre of pixel (row i, column j) is at x = j, y = i (pixel-index convention);
  labels store x / W and y / H.
- COCO: coordinates are continuous and pixel (0, 0) covers [0, 1) x [0, 1), so its centre is at
  (0.5, 0.5). Hence coco_x = x_pixels + 0.5 and coco_y = y_pixels + 0.5, in both directions.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import cv2
import numpy as np

from pinpoint.data.images import IMAGE_SUFFIXES, find_image, image_size, list_images, read_raw
from pinpoint.data.labels import read_labels, write_labels
from pinpoint.errors import InputError
from pinpoint.files import is_hidden, read_user_text, write_text
from pinpoint.outputs import prepare_output_file, prepare_output_folder

COCO_PIXEL_OFFSET = 0.5  # COCO puts a pixel's centre half a pixel from its corner; we put it on the integer
# COCO points up to half a pixel beyond the image's outer edge [0, W] x [0, H] are accepted (our labels
# reach x = W, which is W + 0.5 in COCO, and tools let a click land just off the edge); further is an error.
OUTSIDE_TOLERANCE_PX = 0.5


# ---------------------------------------------------------------------------------------------
# masks -> points


def mask_to_points(mask: np.ndarray, threshold: float = 0) -> np.ndarray:
    """Centroids (N, 2) in pixels (x = column, y = row) of the 8-connected regions where mask > threshold.

    The centroid is the plain mean of the region's pixel indices, as public datasets define a
    target's position, so a region's brightness or mask value does not pull it. Regions come in
    raster order of each region's first pixel (top row first, then left to right), the order of
    NUAA-SIRST's shared labels. OpenCV's own label order agrees on those masks but not in general
    (its block-based scan can number a region starting on row 1 before one starting on row 0),
    so we sort explicitly rather than depend on the labelling algorithm.
    A colour mask is reduced to the maximum over its colour channels (alpha is ignored).
    """
    mask = _single_channel(np.asarray(mask))
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D (H, W) or (H, W, C), got shape {mask.shape}")
    foreground = (mask > threshold).astype(np.uint8)
    count, labels, _, _ = cv2.connectedComponentsWithStats(foreground, connectivity=8)
    if count <= 1:
        return np.zeros((0, 2), dtype=np.float64)
    # Exact sums of indices per region (label 0 is the background), instead of per-region loops.
    rows, cols = np.indices(labels.shape, dtype=np.float64)
    flat = labels.ravel()
    area = np.bincount(flat, minlength=count)[1:].astype(np.float64)
    sum_x = np.bincount(flat, weights=cols.ravel(), minlength=count)[1:]
    sum_y = np.bincount(flat, weights=rows.ravel(), minlength=count)[1:]
    _, first_pixel = np.unique(flat, return_index=True)  # flat index of each label's first pixel
    order = np.argsort(first_pixel[1:], kind="stable")
    return np.stack([sum_x / area, sum_y / area], axis=1)[order]


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """A mask file as a 2-D array of its raw values (8- or 16-bit, grey or colour reduced by max)."""
    path = Path(path)
    mask = read_raw(path, "mask")
    mask = _single_channel(mask)
    if mask.ndim != 2:
        raise InputError(f"{path}: unsupported mask shape {mask.shape}")
    return mask


def masks_to_labels(
    masks_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    threshold: float = 0,
    suffix: str = "",
) -> int:
    """Write one label file per mask image in `masks_dir`; returns how many were written.

    The label file is named after the mask with `suffix` removed from its stem (e.g. '_pixels0'
    for masks named 'Misc_1_pixels0.png'), so that it matches the image's name. Points are
    normalised by the mask's own width and height.
    """
    masks_dir, out_dir = Path(masks_dir), Path(out_dir)
    prepare_output_folder(out_dir, "--out", [masks_dir])
    masks = list_images(masks_dir)
    if not masks:
        raise InputError(f"{masks_dir}: no mask images in this folder (looked for {', '.join(IMAGE_SUFFIXES)})")
    stems: dict[str, Path] = {}
    for path in masks:
        stem = path.stem
        if suffix:
            if not stem.endswith(suffix) or stem == suffix:
                raise InputError(f"{path}: mask name does not end with the suffix {suffix!r} to strip")
            stem = stem[: -len(suffix)]
        if stem in stems:
            raise InputError(f"{path}: gives the same label name {stem!r} as {stems[stem].name}")
        stems[stem] = path
    for stem, path in stems.items():
        mask = read_mask(path)
        height, width = mask.shape
        points = mask_to_points(mask, threshold)
        write_labels(out_dir / f"{stem}.txt", points / np.array([width, height], dtype=np.float64))
    return len(stems)


def _single_channel(mask: np.ndarray) -> np.ndarray:
    # Colour masks mark targets in any colour: a pixel belongs to a target if any colour channel is on.
    if mask.ndim == 3:
        channels = mask.shape[2]
        mask = mask[:, :, :3].max(axis=2) if channels in (3, 4) else mask.max(axis=2)
    return mask


# ---------------------------------------------------------------------------------------------
# COCO keypoints


def labels_to_coco(
    data_dir: str | os.PathLike,
    out_json: str | os.PathLike,
    category: str = "target",
) -> dict:
    """Write a COCO keypoints file for DIR/labels/*.txt (sizes from DIR/images/) and return it.

    Each point becomes one annotation with a single visible keypoint "center" at
    (x_pixels + 0.5, y_pixels + 0.5), a 1 x 1 pixel bbox around it (area 1): tools that insist on
    a box get the pixel the point sits in. Images whose label file says 0 are listed with no
    annotations, so "no target" survives the round trip. Prediction files keep their score as
    the annotation's "score", as in COCO result files. Only images with a label file are listed:
    an image without one is unlabelled, which is not the same as empty.
    """
    data_dir = Path(data_dir)
    labels_dir, images_dir = data_dir / "labels", data_dir / "images"
    prepare_output_file(out_json, "--out", [data_dir, labels_dir, images_dir])
    if not labels_dir.is_dir():
        raise InputError(f"{labels_dir}: not a folder (expected DIR/labels/*.txt beside DIR/images/)")
    label_files = sorted(p for p in labels_dir.iterdir() if p.is_file() and p.suffix == ".txt" and not is_hidden(p))
    if not label_files:
        raise InputError(f"{labels_dir}: no label files (*.txt) in this folder")

    images, annotations = [], []
    for image_id, label_path in enumerate(label_files, start=1):
        labels = read_labels(label_path)
        image_path = find_image(images_dir, label_path.stem)
        height, width = image_size(image_path)
        images.append({"id": image_id, "file_name": image_path.name, "width": width, "height": height})
        xy = labels.xy * np.array([width, height], dtype=np.float64) + COCO_PIXEL_OFFSET
        for index, (x, y) in enumerate(xy):
            # x * W has at most 6 decimals (labels hold 6), so rounding there only removes float noise.
            x, y = round(float(x), 6), round(float(y), 6)
            annotation = {
                "id": len(annotations) + 1,
                "image_id": image_id,
                "category_id": 1,
                "keypoints": [x, y, 2],
                "num_keypoints": 1,
                "bbox": [round(x - 0.5, 6), round(y - 0.5, 6), 1, 1],
                "area": 1,
                "iscrowd": 0,
            }
            if labels.scores is not None:
                annotation["score"] = float(labels.scores[index])
            annotations.append(annotation)

    coco = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": category, "supercategory": category, "keypoints": ["center"], "skeleton": []}],
    }
    write_text(out_json, json.dumps(coco, indent=1) + "\n")
    return coco


def coco_to_labels(
    coco_json: str | os.PathLike,
    out_dir: str | os.PathLike,
    images_dir: str | os.PathLike | None = None,
    category: str | None = None,
) -> int:
    """Write one label file per image listed in a COCO keypoints file; returns how many were written.

    Every keypoint with visibility v > 0 becomes a point, whether the tool wrote one keypoint per
    annotation (CVAT and Label Studio "points") or several; v = 0 means "not labelled" and is
    skipped. Only annotations of `category` (a name) are read when it is given. Images with no
    annotation get a "0" file. Width and height come from the JSON, checked against the image file
    in `images_dir` (default: the 'images' folder beside `out_dir`) where it is there, or read from
    it where the JSON has none. If every point of an image carries a "score", the label file keeps
    it as the third column.
    """
    coco_json, out_dir = Path(coco_json), Path(out_dir)
    images_dir = Path(images_dir) if images_dir is not None else out_dir.parent / "images"
    prepare_output_folder(out_dir, "--out", [coco_json, images_dir])
    coco = _read_json(coco_json)
    images = _coco_list(coco, "images", coco_json)
    annotations = _coco_list(coco, "annotations", coco_json) if "annotations" in coco else []
    categories = _coco_list(coco, "categories", coco_json) if "categories" in coco else []

    wanted_category = None
    if category is not None:
        ids = [c.get("id") for c in categories if isinstance(c, dict) and c.get("name") == category]
        if not ids:
            names = sorted(str(c.get("name")) for c in categories if isinstance(c, dict))
            raise InputError(f"{coco_json}: no category named {category!r} (categories: {', '.join(names) or 'none'})")
        wanted_category = set(ids)

    sizes: dict[object, tuple[int, int]] = {}
    stems: dict[object, str] = {}
    seen_stems: set[str] = set()
    for entry in images:
        if not isinstance(entry, dict) or "id" not in entry or not isinstance(entry.get("file_name"), str):
            raise InputError(f"{coco_json}: every entry of 'images' needs an 'id' and a 'file_name'")
        stem = Path(entry["file_name"].replace("\\", "/")).stem
        if entry["id"] in stems:
            raise InputError(f"{coco_json}: image id {entry['id']!r} is listed twice")
        if stem in seen_stems:
            raise InputError(f"{coco_json}: two images share the name {stem!r}, their label files would collide")
        stems[entry["id"]], sizes[entry["id"]] = stem, _coco_image_size(entry, stem, images_dir, coco_json)
        seen_stems.add(stem)

    points: dict[object, list[tuple[float, float]]] = {image_id: [] for image_id in stems}
    scores: dict[object, list[float | None]] = {image_id: [] for image_id in stems}
    for annotation in annotations:
        if not isinstance(annotation, dict):
            raise InputError(f"{coco_json}: every entry of 'annotations' must be an object")
        if wanted_category is not None and annotation.get("category_id") not in wanted_category:
            continue
        name = f"annotation id {annotation.get('id')!r}"
        image_id = annotation.get("image_id")
        if image_id not in stems:
            raise InputError(f"{coco_json}: {name} refers to image id {image_id!r}, which is not in 'images'")
        keypoints = annotation.get("keypoints")
        if not isinstance(keypoints, list) or len(keypoints) % 3 != 0:
            raise InputError(f"{coco_json}: {name} has no 'keypoints' list of x, y, v triples (is this a COCO keypoints file?)")
        height, width = sizes[image_id]
        score = annotation.get("score")
        for x, y, v in zip(keypoints[0::3], keypoints[1::3], keypoints[2::3]):
            if not all(isinstance(value, (int, float)) and math.isfinite(value) for value in (x, y, v)):
                raise InputError(f"{coco_json}: {name} has a keypoint that is not three finite numbers")
            if v <= 0:
                continue
            if not (-OUTSIDE_TOLERANCE_PX <= x <= width + OUTSIDE_TOLERANCE_PX
                    and -OUTSIDE_TOLERANCE_PX <= y <= height + OUTSIDE_TOLERANCE_PX):
                raise InputError(f"{coco_json}: {name} has keypoint ({x:g}, {y:g}) outside its {width} x {height} image")
            # write_labels clips onto [0, 1]: a point on the image's outer edge lands on the border pixel.
            points[image_id].append(((x - COCO_PIXEL_OFFSET) / width, (y - COCO_PIXEL_OFFSET) / height))
            scores[image_id].append(float(score) if isinstance(score, (int, float)) else None)

    for image_id, stem in stems.items():
        xy = np.array(points[image_id], dtype=np.float64).reshape(-1, 2)
        image_scores = scores[image_id]
        keep_scores = bool(image_scores) and all(s is not None for s in image_scores)
        write_labels(out_dir / f"{stem}.txt", xy, np.array(image_scores, dtype=np.float64) if keep_scores else None)
    return len(stems)


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(read_user_text(path, "COCO file"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: a COCO file is a JSON object with 'images' and 'annotations'")
    return data


def _coco_list(coco: dict, key: str, path: Path) -> list:
    value = coco.get(key)
    if not isinstance(value, list):
        raise InputError(f"{path}: missing or malformed '{key}' list")
    return value


def _coco_image_size(entry: dict, stem: str, images_dir: Path, coco_json: Path) -> tuple[int, int]:
    """(H, W) of a COCO image entry: the JSON's, checked against the image file where it is there.

    The image as displayed (EXIF orientation applied) is the frame a labelling tool showed, and the
    one pinpoint reads; a JSON whose size disagrees with it (the tool saw another frame, or the
    image was resized since) would put every point in the wrong place, so it is refused.
    """
    width, height = entry.get("width"), entry.get("height")
    given = isinstance(width, (int, float)) and isinstance(height, (int, float)) and width >= 1 and height >= 1
    if not given and (width is not None or height is not None):
        raise InputError(f"{coco_json}: image {entry['file_name']!r} has an invalid width/height ({width!r} x {height!r})")
    try:
        path = find_image(images_dir, stem) if images_dir.is_dir() else None
    except InputError:
        if not given:
            raise
        path = None  # no image to check against: the JSON's size is all there is
    if not given:
        return image_size(path)
    if path is not None:
        actual = image_size(path)
        if actual != (int(height), int(width)):
            raise InputError(f"{coco_json}: image {entry['file_name']!r} is {int(width)} x {int(height)} in the JSON but "
                             f"{path} is {actual[1]} x {actual[0]} as displayed (EXIF orientation applied); its points "
                             "would land in the wrong place")
    return int(height), int(width)
