"""PR pictures stay readable whatever the curve names: benchmark rows have 70-character names."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from pinpoint.viz import WRAP_CHARS, plot_pr, pr_figure, wrap

ROW = "pinnet-s2d-x2-e100-nms7-ema-b8-snap-ths-blob1-merge-last-trainthr-gatt-tta"
CURVE = (np.linspace(0, 0.95, 50), np.linspace(1.0, 0.3, 50), 0.9)


def test_wrap_breaks_a_hyphenated_name_at_hyphens_and_loses_nothing() -> None:
    lines = wrap(ROW).split("\n")
    assert len(lines) == 2 and all(len(line) <= WRAP_CHARS for line in lines)
    assert all(line.endswith("-") for line in lines[:-1])
    assert "".join(lines) == ROW
    assert wrap("3 px (AP 0.723)") == "3 px (AP 0.723)"


def pixel_boxes(fig):
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    return ax.get_window_extent(renderer), ax.get_legend().get_window_extent(renderer)


def test_long_names_go_under_the_axes_and_leave_them_their_size() -> None:
    import matplotlib.pyplot as plt

    short_fig = pr_figure({"3 px": CURVE, "5 px": CURVE}, title="48 images")
    long_fig = pr_figure({"tophat": CURVE, ROW: CURVE}, title=f"{ROW} on nuaa_sirst (3 px)")
    (short_axes, short_legend), (long_axes, long_legend) = pixel_boxes(short_fig), pixel_boxes(long_fig)
    # short labels: the legend sits inside the axes
    assert short_axes.x0 <= short_legend.x0 and short_legend.y0 >= short_axes.y0
    # long ones: under the axes, which keep (nearly) the short picture's width; a wrapped title costs some height
    assert long_legend.y1 <= long_axes.y0
    assert long_axes.width >= 0.95 * short_axes.width and long_axes.width >= 0.75 * long_fig.bbox.width
    labels = [text.get_text() for text in long_fig.axes[0].get_legend().get_texts()]
    assert all(len(line) <= WRAP_CHARS for label in labels for line in label.split("\n"))
    assert all(len(line) <= WRAP_CHARS for line in long_fig.axes[0].get_title().split("\n"))
    plt.close(short_fig)
    plt.close(long_fig)


def test_the_saved_picture_grows_to_hold_a_legend_under_the_axes(tmp_path: Path) -> None:
    plot_pr({"3 px": CURVE}, tmp_path / "short.png", title="48 images")
    plot_pr({"tophat": CURVE, "local-contrast": CURVE, ROW: CURVE}, tmp_path / "long.png", title="nuaa_sirst, 3 px")
    short, long = cv2.imread(str(tmp_path / "short.png")), cv2.imread(str(tmp_path / "long.png"))
    assert short.shape[0] <= 520 and abs(short.shape[0] - short.shape[1]) <= 40  # about the 500 px square
    assert long.shape[0] >= short.shape[0] + 60  # four legend lines under the plot
