"""Pictures: heatmap overlays with points, loss curves, PR curves. Drawing returns a new image."""

from __future__ import annotations

import os
import textwrap
from typing import Any, Sequence

import cv2
import numpy as np

from pinpoint.files import atomic_path, write_bytes
from pinpoint.points import Points

SHIFT = 4  # OpenCV fixed-point bits: points are drawn at 1/16 px, never rounded to int(x)


def to_bgr8(grey: np.ndarray) -> np.ndarray:
    """A grey image in [0, 1] as an 8-bit BGR picture, contrast-stretched (0.5-99.5 percentiles)
    so dark 16-bit infrared frames are visible."""
    lo, hi = np.percentile(grey, [0.5, 99.5])
    scaled = np.clip((grey - lo) / max(hi - lo, 1e-6), 0, 1)
    return cv2.cvtColor((scaled * 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)


def overlay_heatmap(picture: np.ndarray, heatmap: np.ndarray, alpha: float = 0.2) -> np.ndarray:
    """Blend a JET-coloured heatmap (H, W) in [0, 1] over a BGR picture of the same size."""
    colour = cv2.applyColorMap((np.clip(heatmap, 0, 1) * 255).astype(np.uint8), cv2.COLORMAP_JET)
    return cv2.addWeighted(colour, alpha, picture, 1 - alpha, 0)


def draw_points(picture: np.ndarray, points: Points, colour: tuple[int, int, int] = (0, 255, 0),
                radius: float = 6.0, label: bool = True) -> np.ndarray:
    """Circles at sub-pixel positions, with the score beside each when `label`."""
    out = picture.copy()
    scale = 1 << SHIFT
    for (x, y), score in zip(points.xy, points.score):
        centre = (int(round(x * scale)), int(round(y * scale)))
        cv2.circle(out, centre, int(round(radius * scale)), colour, 1, cv2.LINE_AA, SHIFT)
        if label:
            cv2.putText(out, f"{score:.2f}", (int(x + radius + 2), int(y - radius)), cv2.FONT_HERSHEY_SIMPLEX,
                        0.35, colour, 1, cv2.LINE_AA)
    return out


def annotate(grey: np.ndarray, points: Points, heatmap: np.ndarray | None = None,
             truth: Points | None = None, alpha: float = 0.2) -> np.ndarray:
    """The detection picture: image, JET heatmap at `alpha`, predictions green, ground truth red."""
    picture = to_bgr8(grey)
    if heatmap is not None:
        picture = overlay_heatmap(picture, heatmap, alpha)
    if truth is not None:
        picture = draw_points(picture, truth, (0, 0, 255), radius=9.0, label=False)
    return draw_points(picture, points)


def save_image(path: str | os.PathLike, picture: np.ndarray) -> None:
    """Write a picture atomically; the format follows the suffix."""
    suffix = os.path.splitext(str(path))[1] or ".png"
    ok, data = cv2.imencode(suffix, picture)
    if not ok:
        raise ValueError(f"{path}: cannot encode a {suffix} image")
    write_bytes(path, data.tobytes())


def plot_curves(history: Sequence[dict[str, Any]], path: str | os.PathLike) -> None:
    """Training and validation loss per epoch, with validation F1 on a second axis when present."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] for row in history]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.plot(epochs, [row["train_loss"] for row in history], "o-", label="train loss")
    if history and "val_loss" in history[0]:
        ax.plot(epochs, [row["val_loss"] for row in history], "s-", label="validation loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if history and "val_f1" in history[0]:
        ax2 = ax.twinx()
        ax2.plot(epochs, [row["val_f1"] for row in history], "^--", color="tab:green", label="validation F1")
        ax2.set_ylabel("F1")
        ax2.set_ylim(0, 1.02)
        h2, l2 = ax2.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    ax.legend(handles, labels, loc="best")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp)
    plt.close(fig)


LEGEND_INSIDE_CHARS = 30  # longer curve labels go under the axes: inside, they would squeeze the plot
WRAP_CHARS = 48  # characters per line of title or label that fit the 5-inch figure at matplotlib's font size


def wrap(text: str, width: int = WRAP_CHARS) -> str:
    """`text` broken into lines of at most `width` characters, at spaces or hyphens: benchmark
    row names are long hyphenated words."""
    return "\n".join(textwrap.wrap(text, width, break_on_hyphens=True)) or text


def pr_figure(curves: dict[str, tuple[np.ndarray, np.ndarray, float]], title: str = "",
              marks: dict[str, tuple[float, float]] | None = None) -> Any:
    """The figure plot_pr saves. Short labels keep the legend inside, in the empty lower left;
    long ones (benchmark rows) are wrapped and listed under the axes, so the curves keep the
    whole width whatever the names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    labels = [f"{name} (AP {ap:.3f})" for name, (_, _, ap) in curves.items()]
    inside = all(len(label) <= LEGEND_INSIDE_CHARS for label in labels)
    for label, (name, (recall, precision, _)) in zip(labels, curves.items()):
        (line,) = ax.plot(recall, precision, label=label if inside else wrap(label))
        if marks and name in marks:
            ax.plot(*marks[name], "o", color=line.get_color())
    ax.set_xlabel("recall (Pd)")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1.01)
    ax.set_ylim(0, 1.01)
    ax.grid(True, alpha=0.3)
    if title:
        ax.set_title(wrap(title))
    if inside:
        ax.legend(loc="lower left")
    fig.tight_layout()
    if not inside:  # added after the layout, so the axes keep their size; the saved picture grows to hold it
        ax.legend(loc="upper left", bbox_to_anchor=(-0.15, -0.12), frameon=False, fontsize="small")
    return fig


def plot_pr(curves: dict[str, tuple[np.ndarray, np.ndarray, float]], path: str | os.PathLike, title: str = "",
            marks: dict[str, tuple[float, float]] | None = None) -> None:
    """Precision-recall curves: name -> (recall, precision, AP); `marks`: name -> the (recall,
    precision) of the operating point, drawn as a dot on that curve. The picture grows downwards
    to hold a legend of long names (pr_figure)."""
    import matplotlib.pyplot as plt

    fig = pr_figure(curves, title, marks)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, bbox_inches="tight")
    plt.close(fig)
